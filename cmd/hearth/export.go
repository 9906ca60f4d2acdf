package main

// `hearth export` and GET /v1/export (admin token): everything hearth holds about
// the household, as JSON lines (docs/privacy.md, "Export").

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// exportFormat is the version of the bundle's layout.
const exportFormat = 1

// exportLine is one line of the bundle: its record type and the record.
type exportLine struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// writeExport writes the bundle: a header, then devices, readings (every one the
// store keeps: within store.max_age and the quota), rollups, tags, the tag log,
// consent, the audit, the messages waiting to leave, the registry (no hashes).
func (a *agent) writeExport(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	line := func(typ string, v any) error { return enc.Encode(exportLine{Type: typ, Data: v}) }
	if err := line("header", map[string]any{"format": exportFormat, "made": time.Now().UTC(), "hearth": version,
		"install_id": a.st.InstallID(), "household_pseudonym": a.sum.Household(),
		"doc": "docs/privacy.md#export: one JSON object per line, {type, data}"}); err != nil {
		return err
	}
	for _, d := range a.st.Devices() {
		if err := line("device", d); err != nil {
			return err
		}
	}
	var after uint64
	for {
		n := 0
		last, err := a.st.ReadEvents(after, 10000, func(seq uint64, r *device.Reading) error {
			n++
			return line("reading", map[string]any{"seq": seq, "device": r.Device, "kind": r.Kind, "signal": r.Signal, "value": r.Value,
				"unit": r.Unit, "label": r.Label, "aux": r.Aux, "device_time": r.DeviceTime, "hub_time": r.HubTime})
		})
		if err != nil {
			return err
		}
		if n == 0 || last <= after {
			break
		}
		after = last
	}
	err := a.st.View(func(tx *store.Tx) error {
		if err := tx.Days("", "9999", func(d *store.Day) error { return line("rollup", d) }); err != nil {
			return err
		}
		if err := tx.EachTag(func(t *store.Tag) error { return line("tag", t) }); err != nil {
			return err
		}
		if err := tx.TagChanges(0, func(seq uint64, c *store.TagChange) error { return line("tag_change", c) }); err != nil {
			return err
		}
		recs, err := tx.ConsentRecords()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := line("consent", r); err != nil {
				return err
			}
		}
		if err := tx.PrivacyAudit(0, func(e *store.AuditEntry) error { return line("audit", e) }); err != nil {
			return err
		}
		if err := tx.Queued(0, func(m store.Message) error {
			return line("pending_message", map[string]any{"id": m.ID, "type": m.Type, "category": m.Category, "body": json.RawMessage(m.Body)})
		}); err != nil {
			return err
		}
		return tx.EachCredential(func(c *store.Credential) error {
			return line("registered_device", map[string]any{"device": c.Device, "kind": c.Kind})
		})
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

func (a *agent) exportHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="hearth-export.jsonl"`)
	if err := a.writeExport(w); err != nil {
		a.log.Error("export failed", "component", "privacy", "err", err)
	}
}

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the running agent's admin.listen address")
	cfgPath := fs.String("config", "", "configuration file")
	tokenFile := fs.String("token-file", "", "the agent's admin token file")
	out := fs.String("o", "", "write the bundle to this file (default: standard output)")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: export takes no arguments, got %q (hearth export [-o FILE])", errUsage, pos)
	}
	c, err := privacyClient(ctx, "export", *addr, *cfgPath, *tokenFile)
	if err != nil {
		return err
	}
	b, err := c.raw(http.MethodGet, "/v1/export")
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (%d bytes)\n", *out, len(b))
	return nil
}
