package store

import (
	"path/filepath"
	"testing"
	"time"
)

// The audit of what left the home has its own retention: an entry older than
// privacy.audit_keep is deleted with its payload; a payload older than
// privacy.payload_keep is deleted while its entry stays; younger ones stay whole.
func TestExpireAudit(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "hearth.db"), nil)
	defer s.Close()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ages := []time.Duration{500 * 24 * time.Hour, 40 * 24 * time.Hour, 24 * time.Hour} // oldest first
	if err := s.Update(func(tx *Tx) error {
		for _, age := range ages {
			if err := tx.AppendPrivacyAudit(&AuditEntry{At: now.Add(-age), Kind: AuditDelivery, Messages: 1}, []byte(`{"batch":[]}`)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var entries, payloads int
	if err := s.Update(func(tx *Tx) error {
		var err error
		entries, payloads, err = tx.ExpireAudit(now, 400*24*time.Hour, 30*24*time.Hour)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if entries != 1 || payloads != 2 {
		t.Errorf("ExpireAudit deleted %d entries and %d payloads, want 1 and 2", entries, payloads)
	}
	type kept struct {
		seq     uint64
		payload bool
	}
	var got []kept
	if err := s.View(func(tx *Tx) error {
		return tx.PrivacyAudit(0, func(e *AuditEntry) error {
			_, ok := tx.AuditPayload(e.Seq)
			got = append(got, kept{e.Seq, ok})
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	want := []kept{{2, false}, {3, true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("audit after expiry: %+v, want %+v (entry 1 gone, entry 2 without its payload, entry 3 whole)", got, want)
	}
}
