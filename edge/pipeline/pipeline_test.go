package pipeline

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
)

// The pipeline is wired as every user relies on: readings submitted to its ingest are
// committed, rolled up and scored into tags in the household's time zone, and
// retention never deletes a reading the rollup has not folded in yet.
func TestPipelineWiring(t *testing.T) {
	rules, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	amsterdam, _ := time.LoadLocation("Europe/Amsterdam")
	p, err := Open(filepath.Join(t.TempDir(), "hearth.db"), Options{Location: amsterdam, Rules: rules, Now: clock,
		Store: store.Options{MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var rs []device.Reading
	for i := range 10 {
		rs = append(rs, device.Reading{Device: "f1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: float64(1 - i%2),
			Boot: 1, Seq: uint64(i + 1), DeviceTime: now.Add(time.Duration(i) * 10 * time.Second)})
	}
	if err := device.Commit(context.Background(), p.Ingest, rs); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour) // every reading is past store.max_age now
	if n, err := p.Store.Expire(now); err != nil || n != 0 {
		t.Fatalf("retention before the rollup read them: %d deleted, %v (the rollup cursor must protect them)", n, err)
	}
	if n, err := p.Rollup.CatchUp(); err != nil || n != 10 {
		t.Fatalf("rollup: %d, %v", n, err)
	}
	if n, err := p.Store.Expire(now); err != nil || n != 10 {
		t.Fatalf("retention after the rollup: %d deleted, %v", n, err)
	}
	var day *store.Day
	if err := p.Store.View(func(tx *store.Tx) error {
		var err error
		day, err = tx.Day(store.DayKey{Date: "2026-03-02", Device: "f1", Signal: device.SignalDoor})
		return err
	}); err != nil || day == nil {
		t.Fatalf("the day's rollup: %+v, %v", day, err)
	}
	if day.Activations[8] != 5 { // 07:00 UTC is 08:00 in Amsterdam
		t.Errorf("activations by local hour %v: want 5 at 08:00 (the household's zone)", day.Activations)
	}
	tags, err := p.Tags.Evaluate(time.Time{})
	if err != nil || len(tags) == 0 {
		t.Fatalf("tags: %d, %v", len(tags), err)
	}
}
