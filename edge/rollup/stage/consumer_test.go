package stage

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// consumerReadings is two days of a fridge (door, temperature) and a plug (power),
// crossing midnight, in the order a hub would commit them.
func consumerReadings() []device.Reading {
	start := time.Date(2026, 3, 9, 21, 0, 0, 0, time.UTC)
	var rs []device.Reading
	for i := range 600 {
		t := start.Add(time.Duration(i) * 3 * time.Minute)
		seq := uint64(len(rs) + 1)
		rs = append(rs,
			device.Reading{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: float64(i % 2), Boot: 1, Seq: seq, HubTime: t},
			device.Reading{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalTemperature, Value: 3 + float64(i%7)/2, Boot: 1, Seq: seq + 1, HubTime: t.Add(time.Second)},
			device.Reading{Device: "plug1", Kind: device.KindPlug, Signal: device.SignalPower, Value: float64(i % 1800), Boot: 1, Seq: seq, HubTime: t.Add(2 * time.Second)})
	}
	return rs
}

func openFilled(t *testing.T, rs []device.Reading) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := device.Commit(context.Background(), st, rs); err != nil {
		t.Fatal(err)
	}
	return st
}

// windowJSON is every rollup.Day of the store, as JSON, for comparing two stores.
func windowJSON(t *testing.T, st *store.Store) string {
	t.Helper()
	var days []rollup.Day
	if err := st.View(func(tx *store.Tx) error {
		return tx.Days("2000-01-01", "2100-01-01", func(d *rollup.Day) error { days = append(days, *d); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(days) == 0 {
		t.Fatal("no days rolled up")
	}
	b, err := json.Marshal(days)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The consumer keeps the records it wrote, decoded, for the next step. Rolling up in
// many small steps through that cache, with a failed step in the middle, must give
// exactly what one consumer per step (reading every record back from the store) gives.
func TestConsumerCacheMatchesStore(t *testing.T) {
	rs := consumerReadings()
	cached, cold := openFilled(t, rs), openFilled(t, rs)

	c := NewConsumer(cached, &ConsumerOptions{Batch: 37})
	steps, failed := 0, false
	for {
		if steps == 5 && !failed {
			// Fail a step after its aggregator changed the cached records: the cache
			// must not keep those changes, or the next steps count readings twice.
			c.failStep = func() error { return errors.New("injected") }
			if _, err := c.Step(); err == nil {
				t.Fatal("the injected failure did not fail the step")
			}
			c.failStep, failed = nil, true
		}
		n, err := c.Step()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		steps++
	}
	if steps < len(rs)/37 {
		t.Fatalf("%d steps for %d readings in batches of 37", steps, len(rs))
	}
	if len(c.days) == 0 {
		t.Fatal("the consumer cached no days")
	}
	for {
		n, err := NewConsumer(cold, &ConsumerOptions{Batch: 37}).Step()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if got, want := windowJSON(t, cached), windowJSON(t, cold); got != want {
		t.Errorf("rollups through the cache differ from rollups read back each step:\ncached %.600s\ncold   %.600s", got, want)
	}
}

// A rollup.Day record that does not read (a damaged page that passed the page check, a bug)
// is quarantined — moved to the audit trail and counted — and the day started afresh
// from the readings that follow; the consumer never stalls on it nor drops it
// silently.
func TestUnreadableDayQuarantined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hearth.db")
	st, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := consumerReadings()
	if err := device.Commit(context.Background(), st, rs[:30]); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatal(err)
	}
	k := rollup.DayKey{Date: rs[0].HubTime.Format(time.DateOnly), Device: "fridge1", Signal: device.SignalDoor}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	storetest.PutRaw(t, path, "rollups", []byte(k.Date+"\x00"+k.Device+"\x00"+string(k.Signal)), []byte(`{"stats": "broken"}`))
	reg := prometheus.NewRegistry()
	st, err = store.Open(path, &store.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := device.Commit(context.Background(), st, rs[30:32]); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConsumer(st, nil).CatchUp(); err != nil {
		t.Fatalf("a step over an unreadable rollup.Day: %v", err)
	}
	var d *rollup.Day
	if err := st.View(func(tx *store.Tx) error { d, err = tx.Day(k); return err }); err != nil || d == nil {
		t.Fatalf("the rollup.Day after quarantine: %+v, %v", d, err)
	}
	if d.Stats.Count != 1 { // started afresh from the one door reading that followed
		t.Errorf("the rollup.Day after quarantine counts %d readings, want the 1 that followed", d.Stats.Count)
	}
	if v, err := metricset.Value(reg, "hearth_store_records_quarantined_total", "bucket", "rollups"); err != nil || v != 1 {
		t.Errorf("quarantined rollups: %v, %v", v, err)
	}
}

// A step after the consumer has read the log to its end reads nothing until a new
// event is logged (LastSeq moves); then it reads and rolls it up.
func TestStepReadsOnlyWhenTheLogGrew(t *testing.T) {
	rs := consumerReadings()
	st := openFilled(t, rs[:30])
	c := NewConsumer(st, nil)
	n, err := c.CatchUp()
	if err != nil || n != 30 {
		t.Fatalf("CatchUp: %d, %v; want 30 events", n, err)
	}
	reads := c.reads
	for range 3 {
		if n, err := c.Step(); n != 0 || err != nil {
			t.Fatalf("a step with nothing new: %d, %v", n, err)
		}
	}
	if c.reads != reads {
		t.Fatalf("steps with nothing logged since the end read the store %d times", c.reads-reads)
	}
	if err := device.Commit(context.Background(), st, rs[30:31]); err != nil {
		t.Fatal(err)
	}
	if n, err := c.CatchUp(); n != 1 || err != nil {
		t.Fatalf("CatchUp after one more reading: %d, %v; want 1 event", n, err)
	}
	var cur uint64
	_ = st.View(func(tx *store.Tx) error { cur = tx.Cursor(CursorName); return nil })
	if cur != st.LastSeq() {
		t.Fatalf("cursor %d after catching up, want LastSeq %d", cur, st.LastSeq())
	}
}
