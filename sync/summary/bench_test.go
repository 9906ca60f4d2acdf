package summary_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

// benchDir is a directory for a benchmark's stores: on tmpfs when there is one, so
// that fsyncs measure the code, not the disk.
func benchDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "hearth-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

// household runs the default simulated household (persona default, its five
// appliances) for days through the store, the rollups, the tag rules shipped in
// configs/tags.yaml (evaluated every 15 simulated minutes) and the builder, with
// consent, and returns what the builder queued: what a hub sends in those days.
func household(b *testing.B, days int) (msgs []store.Message, apps, logged int) {
	st, err := store.Open(filepath.Join(benchDir(b), "h.db"), &store.Options{MaxAge: 100 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	loc := time.UTC
	hh, err := sim.New(sim.Options{Persona: sim.PersonaDefault, Seed: 1, Location: loc, Prefix: privacy.SimPrefix,
		Start: time.Date(2026, 3, 2, 0, 0, 0, 0, loc)})
	if err != nil {
		b.Fatal(err)
	}
	rules, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		b.Fatal(err)
	}
	all := func(string) bool { return true }
	now := hh.Now()
	roll := rollupstage.NewConsumer(st, &rollupstage.ConsumerOptions{Location: loc})
	eng := tagging.New(st, rules, &tagging.Options{Location: loc, Consent: all})
	bld := summary.NewBuilder(st, &summary.Options{Location: loc, Consent: privacy.Consent{Usage: true, Tags: true, Sensitive: true},
		Now: func() time.Time { return now }, RulesVersion: "0123456789ab"})
	end := now.AddDate(0, 0, days).Add(3 * time.Hour)
	var rs []device.Reading
	var out []store.Message
	for now.Before(end) {
		now = now.Add(15 * time.Minute)
		rs = hh.Advance(rs[:0], now)
		for i := range rs {
			rs[i].HubTime = rs[i].DeviceTime
		}
		if len(rs) > 0 {
			if err := device.Commit(context.Background(), st, rs); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := roll.CatchUp(); err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Evaluate(time.Time{}); err != nil {
			b.Fatal(err)
		}
		if _, err := bld.Step(); err != nil {
			b.Fatal(err)
		}
		// What the builder queued is taken away as delivery would (it forms a batch of
		// what waits, once batch_age has passed: here, each 15-minute step's lot).
		out = append(out, drainQueue(b, st)...)
	}
	_ = st.View(func(tx *store.Tx) error {
		return tx.TagChanges(0, func(uint64, *store.TagChange) error { logged++; return nil })
	})
	return out, len(hh.Appliances()), logged
}

// drainQueue takes every queued message out, in order (read, then deleted: never
// under the cursor).
func drainQueue(b *testing.B, st *store.Store) []store.Message {
	var out []store.Message
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.Queued(0, func(m store.Message) error { out = append(out, m); return nil }); err != nil {
			return err
		}
		for _, m := range out {
			if err := tx.Dequeue(m.Seq); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return out
}

// batches groups messages as delivery does: those queued together (within batch_age)
// in one batch, within the transport's limits.
func batches(tr transport.Transport, msgs []store.Message) [][]store.Message {
	lim := tr.Limits()
	var out [][]store.Message
	var cur []store.Message
	size := 0
	for _, m := range msgs {
		n, _ := tr.Size(m)
		if len(cur) > 0 && (!m.Enqueued.Equal(cur[0].Enqueued) || len(cur) >= lim.MaxMessages || size+n > lim.MaxBatchBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, m)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func transports(b *testing.B) []transport.Transport {
	seg, err := transport.NewSegment(transport.SegmentOptions{Endpoint: "http://127.0.0.1:1", WriteKey: "k", Version: "1.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	web, err := transport.NewHTTPS(transport.HTTPSOptions{URL: "http://127.0.0.1:1/v1/hearth", Version: "1.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	mq, err := transport.NewMQTT(transport.MQTTOptions{Broker: "tls://127.0.0.1:1", Version: "1.0.0"})
	if err != nil {
		b.Fatal(err)
	}
	return []transport.Transport{seg, web, mq}
}

// BenchmarkWireBytes: bytes per appliance per day on the wire (request bodies or
// MQTT payloads, compressed as sent) with the default household over 28 days, per
// transport; and what those bytes carry. Run by `make bench-sync`.
func BenchmarkWireBytes(b *testing.B) {
	const days = 28
	msgs, apps, logged := household(b, days)
	byType := map[string]int{}
	for _, m := range msgs {
		byType[m.Type]++
	}
	b.Logf("%d days, %d appliances: %d messages %v; the tag log had %d changes, %d sent (tag_score_step 0.1)",
		days, apps, len(msgs), byType, logged, byType[message.TypeTag])
	for _, tr := range transports(b) {
		b.Run(tr.Name(), func(b *testing.B) {
			var wire, raw, reqs int
			for b.Loop() {
				wire, raw, reqs = 0, 0, 0
				for _, bt := range batches(tr, msgs) {
					body, err := tr.Encode(transport.Batch{ID: "0123456789abcdef0123456789abcdef", Household: "hhhhhhhhhhhhhhhhhhhhhhhhhh", Messages: bt}, time.Now())
					if err != nil {
						b.Fatal(err)
					}
					wire += len(body)
					reqs++
					for _, m := range bt {
						n, _ := tr.Size(m)
						raw += n
					}
				}
			}
			per := float64(apps * days)
			b.ReportMetric(float64(wire)/per, "B/appliance/day")
			b.ReportMetric(float64(raw)/per, "raw-B/appliance/day")
			b.ReportMetric(float64(reqs)/days, "requests/day")
			b.ReportMetric(float64(len(msgs))/per, "msgs/appliance/day")
		})
	}
}

// BenchmarkDay50Devices: the time and allocations to build one closed day's
// summaries for 50 devices (the builder's step, with its store transaction), and to
// encode and compress them as one batch for each transport.
func BenchmarkDay50Devices(b *testing.B) {
	st, err := store.Open(filepath.Join(benchDir(b), "h.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	kinds := []device.Kind{device.KindFridge, device.KindWasher, device.KindOven, device.KindDishwasher, device.KindKettle}
	var rs []device.Reading
	for i := range 50 {
		dev := fmt.Sprintf("dev-%02d", i)
		k := kinds[i%len(kinds)]
		for h := 0; h < 24; h++ {
			at := day.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Second)
			rs = append(rs,
				device.Reading{Device: dev, Kind: k, Signal: device.SignalDoor, Value: 1, Boot: 1, Seq: uint64(h*4 + 1), DeviceTime: at, HubTime: at},
				device.Reading{Device: dev, Kind: k, Signal: device.SignalDoor, Value: 0, Boot: 1, Seq: uint64(h*4 + 2), DeviceTime: at.Add(40 * time.Second), HubTime: at},
				device.Reading{Device: dev, Kind: k, Signal: device.SignalTemperature, Value: 4 + float64(h%3), Unit: "C", Boot: 1, Seq: uint64(h*4 + 3), DeviceTime: at, HubTime: at},
				device.Reading{Device: dev, Kind: k, Signal: device.SignalPower, Value: float64(100 * (h % 5)), Unit: "W", Boot: 1, Seq: uint64(h*4 + 4), DeviceTime: at, HubTime: at})
		}
	}
	for len(rs) > 0 {
		n := min(len(rs), 1000)
		if err := device.Commit(context.Background(), st, rs[:n]); err != nil {
			b.Fatal(err)
		}
		rs = rs[n:]
	}
	if _, err := rollupstage.NewConsumer(st, nil).CatchUp(); err != nil {
		b.Fatal(err)
	}
	now := day.Add(27 * time.Hour)
	bld := summary.NewBuilder(st, &summary.Options{Consent: privacy.Consent{Usage: true}, Now: func() time.Time { return now }, RulesVersion: "r"})
	trs := transports(b)
	b.ReportAllocs()
	var wire [3]int
	for b.Loop() {
		b.StopTimer()
		if err := st.Update(func(tx *store.Tx) error { // the day not yet summarised, the queue empty
			for i := range 50 {
				if err := tx.SetCursor(summary.DaysCursor+"\x00"+fmt.Sprintf("dev-%02d", i), 0); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		drainQueue(b, st)
		b.StartTimer()
		n, err := bld.Step()
		if err != nil || n < 50 {
			b.Fatalf("built %d: %v", n, err)
		}
		var msgs []store.Message
		_ = st.View(func(tx *store.Tx) error {
			return tx.Queued(0, func(m store.Message) error {
				if m.Type == message.TypeDeviceDay {
					msgs = append(msgs, m)
				}
				return nil
			})
		})
		for i, tr := range trs {
			body, err := tr.Encode(transport.Batch{ID: "b", Household: "h", Messages: msgs}, now)
			if err != nil {
				b.Fatal(err)
			}
			wire[i] = len(body)
		}
	}
	for i, tr := range trs {
		b.ReportMetric(float64(wire[i]), tr.Name()+"-B/batch")
	}
}
