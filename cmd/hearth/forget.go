package main

// Erasure: `hearth forget --device NAME` and `hearth forget --household`
// (docs/privacy.md, "Erasure").
//
// The agent restarts in place to carry an erasure out: the request is recorded in
// the store and answered 202; the agent shuts down in order (sources stopped, the
// pipeline drained, the store closed with its checkpoint), and its next start, before
// any stage runs, opens the store alone, deletes the records (store.Tx.EraseDevice,
// EraseHousehold), queues the erasure request for upstream, rewrites the file
// (store.Compact: a copy of the live records and an atomic rename, so that no erased
// byte is left in a free page), deals with the other files under data_dir, scans
// every file for what it erased, and audits the result. Then the agent starts as
// usual, on the same listener addresses. Why a restart: the store keeps each
// device's record and dedupe watermarks in memory, written back at checkpoints; with
// nothing running, nothing can write an erased record back.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/privacy"
)

const (
	scopeDevice    = "device"
	scopeHousehold = "household"
	// nextKeySuffix names the new pseudonym key of a household erasure until the
	// erasure is committed.
	nextKeySuffix = ".next"
)

// erasureResult is what one erasure did, as audited (never the device's local id).
type erasureResult struct {
	Scope     string         `json:"scope"`
	Device    string         `json:"device_pseudonym,omitempty"`
	Household string         `json:"household_pseudonym"` // the pseudonym the data was sent under
	Erased    store.Erased   `json:"erased"`              // records deleted, by bucket
	Deleted   []string       `json:"files_deleted,omitempty"`
	Rewritten []string       `json:"files_rewritten,omitempty"`
	Request   string         `json:"upstream_request"` // the message id of the erasure request queued
	By        string         `json:"by"`
	Via       string         `json:"via"`
	Scan      privacyScanOut `json:"scan"`
}

// privacyScanOut is the byte scan after an erasure: every file under data_dir.
type privacyScanOut struct {
	Files int      `json:"files"`
	Bytes int64    `json:"bytes"`
	Hits  int      `json:"hits"`            // occurrences of the erased local ids (the pseudonyms stay in the erasure's own records)
	Where []string `json:"where,omitempty"` // files that still hold some
}

// carryOutErasures carries out the pending requests, with nothing else running,
// and reopens the pipeline.
func (a *agent) carryOutErasures(reqs []store.ErasureRequest) error {
	path := a.st.Path()
	if err := a.pipe.Close(); err != nil { // its checkpoint: nothing of it is left in memory only
		return fmt.Errorf("forget: close the store: %w", err)
	}
	results, eraseErr := a.erase(path, reqs)
	var err error
	if a.pipe, err = a.openPipe(); err != nil {
		return fmt.Errorf("store.file: %w", err)
	}
	a.st, a.in, a.roll, a.eng = a.pipe.Store, a.pipe.Ingest, a.pipe.Rollup, a.pipe.Tags
	if eraseErr != nil {
		return fmt.Errorf("forget: %w", eraseErr)
	}
	return a.st.Update(func(tx *store.Tx) error {
		for _, r := range results {
			if err := tx.AppendPrivacyAudit(erasureAudit(r, time.Now()), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// erasureAudit is the audit entry of an erasure carried out: r as its detail.
func erasureAudit(r erasureResult, at time.Time) *store.AuditEntry {
	b, _ := json.Marshal(r)
	var detail map[string]any
	_ = json.Unmarshal(b, &detail)
	return &store.AuditEntry{At: at.UTC(), Kind: store.AuditErasure, Categories: []string{privacy.Erasure}, Detail: detail}
}

// erase opens the store alone and carries out reqs (see the file's comment).
func (a *agent) erase(path string, reqs []store.ErasureRequest) ([]erasureResult, error) {
	st, err := store.Open(path, &store.Options{QuotaBytes: a.cfg.Store.QuotaBytes, Logger: a.log})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	keyFile := a.cfg.KeyFile()
	p := a.pseudonyms()
	household := p.ID("household", st.InstallID())
	now := time.Now().UTC()
	var results []erasureResult
	var needles [][]byte
	var newKey []byte
	for _, r := range reqs {
		if r.Scope == scopeHousehold && newKey == nil {
			// The new key is written first beside the old one and takes its place once
			// the erasure is committed (openPrivacy finishes a rename a crash stopped).
			if newKey, err = privacy.RotateKey(keyFile + nextKeySuffix); err != nil {
				return nil, err
			}
		}
	}
	err = st.Erase(func(tx *store.Tx) error {
		for _, r := range reqs {
			res := erasureResult{Scope: r.Scope, Household: household, By: r.By, Via: r.Via}
			var err error
			switch r.Scope {
			case scopeDevice:
				res.Device = p.ID("device", r.Device)
				needles = append(needles, []byte(r.Device)) // its pseudonym stays in the erasure's own records
				res.Erased, err = tx.EraseDevice(r.Device, store.EraseOptions{Pseudonym: res.Device,
					Rename: func(m []store.Message) string { return outbox.BatchID(household, m) }})
				if err == nil {
					err = tx.AddForgotten(res.Device, now)
				}
			case scopeHousehold:
				for _, d := range st.Devices() {
					needles = append(needles, []byte(d.ID))
				}
				res.Erased, err = tx.EraseHousehold()
			default:
				err = fmt.Errorf("erasure request %d: scope %q", r.Seq, r.Scope)
			}
			if err != nil {
				return err
			}
			msg := message.Erasure{Type: message.TypeErasure, Household: household, Scope: r.Scope, Device: res.Device, RequestedAt: r.At.UTC()}
			msg.ID = p.ID("message", strings.Join([]string{"erasure", r.Scope, res.Device, r.At.UTC().Format(time.RFC3339Nano)}, "\x00"))
			body, _ := json.Marshal(msg)
			if err := tx.Enqueue(&store.Message{Enqueued: now, Type: message.TypeErasure, ID: msg.ID, Category: privacy.Erasure,
				At: r.At.UTC(), Body: body}); err != nil {
				return err
			}
			res.Request = msg.ID
			if err := tx.ErasureDone(r.Seq); err != nil {
				return err
			}
			results = append(results, res)
		}
		return nil
	})
	if err != nil {
		if newKey != nil {
			os.Remove(keyFile + nextKeySuffix)
		}
		return nil, err
	}
	if newKey != nil {
		if err := os.Rename(keyFile+nextKeySuffix, keyFile); err != nil {
			return nil, fmt.Errorf("forget: the new pseudonym key: %w", err)
		}
		a.key = newKey
	}
	// The erased records' bytes are still in bbolt's free pages: rewrite the file.
	if _, err := st.Compact(); err != nil {
		return nil, fmt.Errorf("rewrite the store without the erased records: %w", err)
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	// The other files under data_dir.
	deleted, rewritten, err := a.eraseFiles(path, results)
	if err != nil {
		return nil, err
	}
	scan, err := privacy.Scan(a.cfg.DataDir, needles...)
	if err != nil {
		return nil, fmt.Errorf("forget: scan %s: %w", a.cfg.DataDir, err)
	}
	out := privacyScanOut{Files: scan.Files, Bytes: scan.Bytes, Where: scan.HitFiles()}
	for i := range needles {
		out.Hits += scan.Total(i)
	}
	for i := range results {
		results[i].Deleted, results[i].Rewritten, results[i].Scan = deleted, rewritten, out
	}
	a.log.Info("erasure carried out", "component", "privacy", "requests", len(results), "files_scanned", out.Files,
		"bytes_scanned", out.Bytes, "hits", out.Hits)
	if out.Hits > 0 {
		a.log.Error("erasure: bytes of what was erased are still in files under data_dir", "component", "privacy", "files", out.Where)
	}
	return results, nil
}

// eraseFiles deals with the files beside the store: the copies salvage moved aside
// (*.corrupt-*, and leftovers of a salvage or compaction a crash interrupted) are
// deleted — a damaged bbolt file cannot be edited safely, and it holds everything;
// the file transport's summaries lose the lines about an erased device (all of them
// for the household). The keep file is rewritten by the store itself (its
// credentials changed).
func (a *agent) eraseFiles(path string, results []erasureResult) (deleted, rewritten []string, err error) {
	dir := filepath.Dir(path)
	base := filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, base+".corrupt-") || n == base+".salvage" || n == base+".salvage-partial" || n == base+".compact" {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, nil, fmt.Errorf("forget: delete %s: %w", n, err)
			}
			deleted = append(deleted, n)
		}
	}
	if a.cfg.Sync.Transport != "file" {
		return deleted, nil, nil
	}
	sink := filepath.Join(a.cfg.DataDir, a.cfg.Sync.Dir)
	all := false
	var pseudonyms [][]byte
	for _, r := range results {
		all = all || r.Scope == scopeHousehold
		if r.Device != "" {
			pseudonyms = append(pseudonyms, []byte(r.Device))
		}
	}
	files, err := os.ReadDir(sink)
	if errors.Is(err, fs.ErrNotExist) {
		return deleted, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		name := filepath.Join(sink, f.Name())
		if !f.Type().IsRegular() {
			continue
		}
		if all {
			if err := os.Remove(name); err != nil {
				return nil, nil, err
			}
			deleted = append(deleted, filepath.Join(a.cfg.Sync.Dir, f.Name()))
			continue
		}
		changed, err := dropLines(name, func(line []byte) bool {
			for _, p := range pseudonyms {
				if bytes.Contains(line, p) {
					return true
				}
			}
			return false
		})
		if err != nil {
			return nil, nil, err
		}
		if changed {
			rewritten = append(rewritten, filepath.Join(a.cfg.Sync.Dir, f.Name()))
		}
	}
	return deleted, rewritten, nil
}

// dropLines rewrites a file without the lines drop picks (a new file, synced and
// renamed over the old, so the old blocks are freed whole); it reports whether it
// changed anything.
func dropLines(name string, drop func([]byte) bool) (bool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return false, err
	}
	var out bytes.Buffer
	changed := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if drop(sc.Bytes()) {
			changed = true
			continue
		}
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil || !changed {
		return false, err
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return false, err
	}
	_, err = f.Write(out.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, syncDir(filepath.Dir(name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// forgetRequest is the body of POST /v1/forget.
type forgetRequest struct {
	Device    string `json:"device,omitempty"`
	Household bool   `json:"household,omitempty"`
	By        string `json:"by,omitempty"`
	Via       string `json:"via,omitempty"` // cli, admin_api (default), page
}

// forgetHandler is POST /v1/forget: it records the request and restarts the agent
// in place to carry it out; 202 with the audit sequence to wait past.
func (a *agent) forgetHandler(w http.ResponseWriter, r *http.Request) {
	var req forgetRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("forget: body: %w", err))
		return
	}
	if (req.Device == "") == !req.Household {
		admin.WriteError(w, http.StatusBadRequest, errors.New(`forget: give {"device": NAME} or {"household": true}`))
		return
	}
	via, by, err := whoAndHow(req.Via, req.By)
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	er := store.ErasureRequest{Scope: scopeHousehold, By: by, Via: via, At: time.Now().UTC()}
	if req.Device != "" {
		known := false
		for _, d := range a.st.Devices() {
			known = known || d.ID == req.Device
		}
		if !known {
			_ = a.st.View(func(tx *store.Tx) error { c, _ := tx.Credential(req.Device); known = c != nil; return nil })
		}
		if !known {
			admin.WriteError(w, http.StatusNotFound, fmt.Errorf("forget: hearth holds nothing of a device %q (hearth device list, /v1/devices)", req.Device))
			return
		}
		er.Scope, er.Device = scopeDevice, req.Device
	}
	var after uint64
	if err := a.st.Update(func(tx *store.Tx) error {
		after = tx.LastPrivacyAudit()
		return tx.RequestErasure(&er)
	}); err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	a.log.Info("erasure asked for: restarting in place to carry it out", "component", "privacy", "scope", er.Scope, "via", via)
	admin.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "accepted: the agent restarts in place to carry it out",
		"scope": er.Scope, "audit_after": after})
	a.requestRestart()
}

// whoAndHow checks a request's via and by.
func whoAndHow(via, by string) (string, string, error) {
	switch via {
	case "":
		via = "admin_api"
	case "cli", "admin_api", "page":
	default:
		return "", "", fmt.Errorf("via %q: one of cli, admin_api, page", via)
	}
	if by == "" {
		by = "unknown"
	}
	if len(by) > 64 {
		return "", "", errors.New("by: at most 64 characters")
	}
	return via, by, nil
}

const forgetUsage = `usage: hearth forget --device NAME      erase every record of a device, here and (by a request) upstream
       hearth forget --household         erase everything hearth holds, and replace the pseudonym key
  --yes              do not ask (the household's page asks with its own confirmation)
  --config FILE, --addr HOST:PORT, --token-file FILE: the agent to ask (as hearth device)
The agent restarts in place to carry it out; the command waits and prints what was erased
and the byte scan of every file under data_dir (docs/privacy.md, "Erasure").
`

func cmdForget(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("forget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the running agent's admin.listen address")
	cfgPath := fs.String("config", "", "configuration file")
	tokenFile := fs.String("token-file", "", "the agent's admin token file")
	dev := fs.String("device", "", "the device to forget")
	household := fs.Bool("household", false, "forget the whole household")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the agent to carry it out")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || (*dev == "") == !*household {
		fmt.Fprint(stderr, forgetUsage)
		return fmt.Errorf("%w: forget takes --device NAME or --household", errUsage)
	}
	if !*yes {
		what := "device " + *dev
		if *household {
			what = "the WHOLE household (every reading, rollup, tag, the audit; the pseudonym key is replaced)"
		}
		fmt.Fprintf(stdout, "Erase %s, on this hub for good, and ask the receiver upstream to erase it too? Type yes: ", what)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("forget: not confirmed: nothing erased")
		}
	}
	c, err := privacyClient(ctx, "forget", *addr, *cfgPath, *tokenFile)
	if err != nil {
		return err
	}
	var acc struct {
		AuditAfter uint64 `json:"audit_after"`
	}
	if _, err := c.api(http.MethodPost, "/v1/forget", forgetRequest{Device: *dev, Household: *household, By: osUser(), Via: "cli"}, &acc); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "accepted: the agent restarts in place to carry it out…")
	deadline := time.Now().Add(*wait)
	for {
		var l auditList
		if _, err := c.api(http.MethodGet, fmt.Sprintf("/v1/audit?after=%d&kind=erasure&limit=10", acc.AuditAfter), nil, &l); err == nil && len(l.Entries) > 0 {
			for _, e := range l.Entries {
				fmt.Fprintln(stdout, auditLine(e))
				b, _ := json.MarshalIndent(e.Detail, "  ", "  ")
				fmt.Fprintf(stdout, "  %s\n", b)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("forget: the agent did not report the erasure within %s (hearth audit --kind erasure shows it when it does)", *wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
