package main

// `hearth audit` and its routes: GET /v1/audit (open), GET /v1/audit/{seq}/payload
// (admin token). docs/privacy.md, "What left the home".

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/sync/transport/syncpb"
)

// auditList is GET /v1/audit: the newest entries, oldest first.
type auditList struct {
	Entries []store.AuditEntry `json:"entries"`
	Last    uint64             `json:"last"` // the newest sequence
}

// audit returns up to limit entries after seq after (the newest when after is 0),
// of kind when not empty.
func (a *agent) audit(after uint64, limit int, kind string) (auditList, error) {
	var out auditList
	err := a.st.View(func(tx *store.Tx) error {
		out.Last = tx.LastPrivacyAudit()
		return tx.PrivacyAudit(after, func(e *store.AuditEntry) error {
			if kind == "" || e.Kind == kind {
				out.Entries = append(out.Entries, *e)
				if after > 0 && len(out.Entries) >= limit {
					return store.ErrStopRange
				}
				if len(out.Entries) > limit {
					out.Entries = out.Entries[1:]
				}
			}
			return nil
		})
	})
	if out.Entries == nil {
		out.Entries = []store.AuditEntry{}
	}
	return out, err
}

func (a *agent) auditHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err1 := strconv.ParseUint(orDefault(q.Get("after"), "0"), 10, 64)
	limit, err2 := strconv.Atoi(orDefault(q.Get("limit"), "100"))
	if err1 != nil || err2 != nil || limit < 1 || limit > 10000 {
		admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("audit: after=N (a sequence), limit=1..10000"))
		return
	}
	l, err := a.audit(after, limit, q.Get("kind"))
	if err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, l)
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// payloadHandler is GET /v1/audit/{seq}/payload: the exact payload of a delivered
// batch, as it was sent (before compression), while privacy.payload_keep keeps it.
func (a *agent) payloadHandler(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, fmt.Errorf("audit: %q is not an entry's sequence", r.PathValue("seq")))
		return
	}
	var p []byte
	var ok bool
	_ = a.st.View(func(tx *store.Tx) error { p, ok = tx.AuditPayload(seq); return nil })
	if !ok {
		admin.WriteError(w, http.StatusNotFound, fmt.Errorf("audit: no payload kept for entry %d (not a delivery, or older than privacy.payload_keep)", seq))
		return
	}
	ct := "application/octet-stream"
	switch {
	case json.Valid(p):
		ct = "application/json"
	case len(p) > 0 && (p[0] == '{' || p[0] == '['):
		ct = "application/x-ndjson" // the file transport's lines
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(p)
}

const auditUsage = `usage: hearth audit [--last N] [--kind delivery|consent|erasure|withheld] [--json]
       hearth audit --show SEQ      the exact payload of delivered batch SEQ, as it was sent
`

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the running agent's admin.listen address")
	cfgPath := fs.String("config", "", "configuration file")
	tokenFile := fs.String("token-file", "", "the agent's admin token file")
	last := fs.Int("last", 20, "how many entries, newest last")
	kind := fs.String("kind", "", "only entries of this kind")
	show := fs.Uint64("show", 0, "print the exact payload of this entry")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("%w: audit takes no arguments, got %q", errUsage, pos)
	}
	c, err := privacyClient(ctx, "audit", *addr, *cfgPath, *tokenFile)
	if err != nil {
		return err
	}
	if *show > 0 {
		raw, err := c.raw(http.MethodGet, fmt.Sprintf("/v1/audit/%d/payload", *show))
		if err != nil {
			return err
		}
		if !json.Valid(raw) && !(len(raw) > 0 && raw[0] == '{') {
			// The native transports' protobuf: shown as its JSON form, field for field.
			var b syncpb.Batch
			if err := proto.Unmarshal(raw, &b); err == nil {
				raw, _ = protojson.MarshalOptions{Multiline: true}.Marshal(&b)
			}
		}
		_, err = stdout.Write(append(raw, '\n'))
		return err
	}
	var l auditList
	if _, err := c.api(http.MethodGet, fmt.Sprintf("/v1/audit?limit=%d&kind=%s", max(*last, 1), *kind), nil, &l); err != nil {
		return err
	}
	if *asJSON {
		return writeIndented(stdout, l)
	}
	if len(l.Entries) == 0 {
		fmt.Fprintln(stdout, "nothing has left the home, and no consent or erasure was recorded.")
	}
	for _, e := range l.Entries {
		fmt.Fprintln(stdout, auditLine(e))
	}
	return nil
}

// auditLine is one entry for a person: its sequence, its local time, what it says.
func auditLine(e store.AuditEntry) string {
	return fmt.Sprintf("%5d %s  %s", e.Seq, e.At.Local().Format(time.DateTime), auditText(e))
}

// auditText says what an entry records.
func auditText(e store.AuditEntry) string {
	switch e.Kind {
	case store.AuditDelivery:
		kept := ""
		if e.Payload {
			kept = fmt.Sprintf(" (hearth audit --show %d)", e.Seq)
		}
		return fmt.Sprintf("sent     %d message(s), %d B via %s to %s [%s]%s", e.Messages, e.Bytes, e.Transport,
			e.Endpoint, strings.Join(e.Categories, ","), kept)
	case store.AuditConsent:
		var c consentDetail
		detailAs(e.Detail, &c)
		return fmt.Sprintf("consent  %s %s by %s via %s (%d queued message(s) purged)", c.Category,
			map[bool]string{true: "granted", false: "withdrawn"}[c.Granted], c.By, c.Via, c.Purged)
	case store.AuditErasure:
		var r erasureResult
		detailAs(e.Detail, &r)
		what := r.Scope // the household's erasure names no device
		if r.Device != "" {
			what += " " + r.Device
		}
		return fmt.Sprintf("erasure  %s by %s via %s: %d records; scan of %d files, %d bytes: %d left", what,
			r.By, r.Via, r.Erased.Total(), r.Scan.Files, r.Scan.Bytes, r.Scan.Hits)
	case store.AuditWithheld:
		return fmt.Sprintf("withheld %d message(s) at send: consent withdrawn", e.Messages)
	}
	return e.Kind
}

// consentDetail is a consent entry's detail (privacy.Ledger.Set writes it).
type consentDetail struct {
	Category string `json:"category"`
	Granted  bool   `json:"granted"`
	By       string `json:"by"`
	Via      string `json:"via"`
	Purged   int    `json:"purged"`
}

// detailAs decodes an entry's detail into v, its own type: the store gives the
// detail back from JSON, its numbers as float64s, which %v writes in exponent form
// from a million on ("2.15132e+06 bytes", its last digits lost). What does not
// decode is left at its zero value.
func detailAs(d map[string]any, v any) {
	b, err := json.Marshal(d)
	if err == nil {
		_ = json.Unmarshal(b, v)
	}
}

// raw calls the agent and returns the body as it is.
func (c *registryClient) raw(method, path string) ([]byte, error) {
	var b []byte
	_, err := c.api(method, path, nil, &b)
	return b, err
}
