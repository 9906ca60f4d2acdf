package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// An erasure's and a consent change's counts read as whole numbers in `hearth audit`
// and on the page (both say auditText), however large, once the entry has been
// through the store (its detail comes back from JSON as float64s): a scan of 2.1 MB
// was shown as "2.15132e+06 bytes", its last digits lost.
func TestAuditErasureLineCounts(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res := erasureResult{Scope: scopeDevice, Device: "tuztd44t3kk3qruqf7r2ftgtwf", Household: "bcixafu57uwa65j5cthhwdtgeo",
		Erased: store.Erased{"events": 1_200_000, "dedupe": 136, "devices": 1}, By: "household page", Via: "page",
		Scan: privacyScanOut{Files: 6, Bytes: 2_151_320, Hits: 0}}
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.AppendPrivacyAudit(erasureAudit(res, time.Now()), nil); err != nil {
			return err
		}
		return tx.AppendPrivacyAudit(&store.AuditEntry{Kind: store.AuditConsent, Categories: []string{privacy.Usage}, Messages: 1_500_000,
			Detail: map[string]any{"category": privacy.Usage, "granted": false, "by": "ana", "via": "cli", "purged": 1_500_000}}, nil)
	}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	if err := st.View(func(tx *store.Tx) error {
		return tx.PrivacyAudit(0, func(e *store.AuditEntry) error { lines = append(lines, auditText(*e)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"erasure  device tuztd44t3kk3qruqf7r2ftgtwf by household page via page: 1200137 records; scan of 6 files, 2151320 bytes: 0 left",
		"consent  usage withdrawn by ana via cli (1500000 queued message(s) purged)",
	}
	if len(lines) != len(want) {
		t.Fatalf("audit lines %q, want %d", lines, len(want))
	}
	notInteger := regexp.MustCompile(`\d[.eE][-+\d]`)
	for i, l := range lines {
		if l != want[i] {
			t.Errorf("audit line %d:\n got %q\nwant %q", i, l, want[i])
		}
		if m := notInteger.FindString(l); m != "" {
			t.Errorf("audit line %d has a count that is not an integer (%q): %s", i, m, l)
		}
		if strings.Contains(l, "<nil>") {
			t.Errorf("audit line %d lacks a field: %s", i, l)
		}
	}
}
