package summary_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/sync/cdptest"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

// Seven days offline on the hub's clock (injected: the test runs in a second), then
// the link returns: every summary made arrives, each once after de-duplication, in
// order per device; nothing was dropped while the receiver was gone.
func TestSevenDaysOffline(t *testing.T) {
	st := storetest.Open(t, nil)
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	rcv := cdptest.New(cdptest.Options{WriteKey: "wk", Now: clock})
	url := rcv.Start(t)
	tr, err := transport.NewSegment(transport.SegmentOptions{Endpoint: url, WriteKey: "wk", Version: "test", Now: clock,
		Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	consent := privacy.Consent{Usage: true}
	b := summary.NewBuilder(st, &summary.Options{Consent: consent, Now: clock, RulesVersion: "r-test"})
	d := outbox.New(st, tr, &outbox.Options{Household: b.Household(), Consent: consent, Now: clock, BatchCount: 20})
	roll := rollupstage.NewConsumer(st, nil)
	devs := []struct {
		id   string
		kind device.Kind
		sig  device.Signal
	}{{"fridge", device.KindFridge, device.SignalDoor}, {"oven", device.KindOven, device.SignalActive}, {"washer", device.KindWasher, device.SignalActive}}
	seq := uint64(0)
	ctx := context.Background()
	hour := func(down bool) {
		t.Helper()
		var rs []device.Reading
		seq++
		for _, dv := range devs {
			for _, v := range []float64{1, 0} {
				at := now.Add(time.Duration(v) * time.Minute)
				rs = append(rs, device.Reading{Device: dv.id, Kind: dv.kind, Signal: dv.sig, Value: 1 - v, Boot: 1, Seq: seq*2 + uint64(v),
					DeviceTime: at, HubTime: at})
			}
		}
		if err := device.Commit(ctx, st, rs); err != nil {
			t.Fatal(err)
		}
		if _, err := roll.CatchUp(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Step(); err != nil {
			t.Fatal(err)
		}
		rcv.SetDown(down)
		if _, err := d.Step(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	for range 24 { // day 1 online
		hour(false)
	}
	online := rcv.Counts().Unique
	for range 7 * 24 { // seven days offline
		hour(true)
	}
	if c := rcv.Counts(); c.Unique != online {
		t.Fatalf("the receiver took %d messages while down", c.Unique-online)
	}
	h := d.Health()
	if h.Pending.Queued+h.Pending.BatchMessages < 7*3 || h.OutageSince.IsZero() {
		t.Fatalf("after seven days offline: %+v", h)
	}
	t.Logf("after 7 days offline: %d messages waiting (%d B), oldest %s", h.Pending.Queued+h.Pending.BatchMessages,
		h.Pending.QueuedBytes+h.Pending.BatchBytes, now.Sub(h.Pending.Oldest).Round(time.Hour))
	// The link returns: within the resume spread (1h by default) everything goes.
	rcv.SetDown(false)
	back := now
	drained := time.Duration(0)
	for i := 0; i < 24*4 && (now.Sub(back) < 3*time.Hour || d.Health().Pending.Queued > 0 || d.Health().Pending.Batches > 0); i++ {
		if p := d.Health().Pending; drained == 0 && p.Queued == 0 && p.Batches == 0 {
			drained = now.Sub(back)
		}
		now = now.Add(15 * time.Minute)
		if _, err := b.Step(); err != nil { // the devices are quiet now: the hub's clock closes day 8
			t.Fatal(err)
		}
		if _, err := d.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := rcv.Counts()
	t.Logf("receiver: %+v; the backlog drained %s after the link returned", c, drained)
	var made int
	_ = st.View(func(tx *store.Tx) error {
		s, _ := tx.DeliveryState()
		made = int(s.Delivered)
		return nil
	})
	if p := d.Health().Pending; p.Queued+p.BatchMessages != 0 || c.Unique != made || c.Duplicates != 0 {
		t.Fatalf("after the link returned: pending %+v, receiver %+v, delivered %d", p, c, made)
	}
	days := map[string][]string{}
	for _, e := range rcv.Events() {
		if e.Event != transport.EventDeviceDay {
			continue
		}
		dev := e.Properties["device"].(string)
		days[dev] = append(days[dev], e.Properties["date"].(string))
	}
	if len(days) != 3 {
		t.Fatalf("days of %d devices arrived", len(days))
	}
	for dev, ds := range days {
		want := make([]string, 0, 8)
		for i := range 8 { // day 1 online, days 2-8 offline: all closed by the end
			want = append(want, start.AddDate(0, 0, i).Format(time.DateOnly))
		}
		if strings.Join(ds, " ") != strings.Join(want, " ") {
			t.Errorf("device %s: days arrived %v, want %v in order", dev, ds, want)
		}
	}
	if fmt.Sprint(h.Pending.DeadLetters) != "0" {
		t.Errorf("dead letters: %d", h.Pending.DeadLetters)
	}
}
