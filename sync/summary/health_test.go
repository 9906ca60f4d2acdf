package summary

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/sync/privacy"
)

func healthMsgs(t *testing.T, st *store.Store) []map[string]any {
	var out []map[string]any
	for _, m := range outbox(t, st) {
		if m["type"] == "health" {
			out = append(out, m)
		}
	}
	return out
}

// One health message per local day of the hub clock, carrying the store's refusal
// and eviction counters; none while the hub clock is unset (1970) or without consent.
func TestHealthDaily(t *testing.T) {
	st := storetest.Open(t, &store.Options{MaxBatch: 10})
	// Something to report: a batch over max_batch is refused.
	err := device.Commit(context.Background(), st, make([]device.Reading, 11))
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	at := time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)
	if err := device.Commit(context.Background(), st, []device.Reading{
		{Device: "kitchen-fridge", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, HubTime: at}}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(5, 0) // a Pi before NTP
	loc := time.FixedZone("UTC+8", 8*3600)
	b := NewBuilder(st, &Options{Consent: privacy.Consent{Usage: true}, Location: loc, Now: func() time.Time { return now }})
	step := func() {
		t.Helper()
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := len(healthMsgs(t, st)); n != 0 {
		t.Fatalf("%d health messages with the clock in 1970, want 0", n)
	}
	now = time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC) // 23:00 local
	step()
	step()
	msgs := healthMsgs(t, st)
	if len(msgs) != 1 {
		t.Fatalf("%d health messages after two steps in one day, want 1", len(msgs))
	}
	m := msgs[0]
	if m["date"] != "2026-03-04" || m["household"] == "" || m["id"] == "" {
		t.Errorf("message %v", m)
	}
	sm := m["store"].(map[string]any)
	if r := sm["refused"].(map[string]any)["too_large"]; r != 11.0 {
		t.Errorf("refused too_large = %v, want 11", r)
	}
	if sm["quota_bytes"] != float64(64<<20) || sm["intake_stopped"] != false {
		t.Errorf("store health %v", sm)
	}
	now = now.Add(2 * time.Hour) // 01:00 local, the next day
	step()
	if msgs := healthMsgs(t, st); len(msgs) != 2 || msgs[1]["date"] != "2026-03-05" || msgs[1]["id"] == msgs[0]["id"] {
		t.Fatalf("next day: %v", msgs)
	}
	// Without consent, nothing about the hub leaves either.
	nb := NewBuilder(st, &Options{Location: loc, Now: func() time.Time { return now.AddDate(0, 0, 1) }})
	if _, err := nb.Step(); err != nil {
		t.Fatal(err)
	}
	if n := len(healthMsgs(t, st)); n != 2 {
		t.Errorf("%d health messages after a step without consent, want still 2", n)
	}
}
