package outbox

import (
	"container/heap"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/cdptest"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/transport"
)

var (
	fleetHubs   = flag.Int("fleet.hubs", 1000, "BenchmarkFleet: hubs")
	fleetSpread = flag.Duration("fleet.spread", 0, "BenchmarkFleet: sync.retry.resume_spread (0: the default, 24h)")
	fleetOutage = flag.Duration("fleet.outage", 24*time.Hour, "BenchmarkFleet: how long the receiver is down")
)

// fleetHub is one home: its own store, its own clock (the fleet's time plus its
// skew), its own phase in the day (when its days close), and delivery to the one
// receiver.
type fleetHub struct {
	i       int
	st      *store.Store
	d       *Delivery
	skew    time.Duration
	phase   time.Duration // offset in the day of its day-close burst
	nextGen time.Time     // when it next queues messages
	gen     int
	wake    time.Time
	drained time.Time // when its backlog was all acknowledged after the receiver returned
	idx     int
}

type hubHeap []*fleetHub

func (h hubHeap) Len() int { return len(h) }
func (h hubHeap) next(x *fleetHub) time.Time {
	if !x.wake.IsZero() && x.wake.Before(x.nextGen) {
		return x.wake
	}
	return x.nextGen
}
func (h hubHeap) Less(i, j int) bool { return h.next(h[i]).Before(h.next(h[j])) }
func (h hubHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx, h[j].idx = i, j }
func (h *hubHeap) Push(x any)        { x.(*fleetHub).idx = len(*h); *h = append(*h, x.(*fleetHub)) }
func (h *hubHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// queue puts one household's messages in a hub's outbox: at its day close, five
// appliances' days and the health message; half a day later, two tag changes.
func (f *fleetHub) queue(t *testing.B, now time.Time) {
	hh := fmt.Sprintf("hub%023d", f.i)
	err := f.st.Update(func(tx *store.Tx) error {
		put := func(typ, id string, v any) error {
			body, _ := json.Marshal(v)
			return tx.Enqueue(&store.Message{Enqueued: now, Type: typ, ID: id, Category: privacy.Usage, At: now, Body: body})
		}
		if f.gen%2 == 0 {
			date := now.Add(-26 * time.Hour).Format(time.DateOnly)
			for a, k := range []device.Kind{device.KindFridge, device.KindWasher, device.KindOven, device.KindDishwasher, device.KindKettle} {
				id := fmt.Sprintf("%s-%d-%s", hh, a, date)
				mean := 4.2
				if err := put(message.TypeDeviceDay, id, message.DeviceDay{Type: message.TypeDeviceDay, ID: id, Household: hh,
					Device: fmt.Sprintf("dev%023d", f.i*10+a), Kind: k, Date: date, Rules: "0123456789ab",
					Signals: map[device.Signal]*message.Signal{device.SignalDoor: {N: 40, Sessions: 20, OnSeconds: 600, ByPart: &[4]uint32{1, 8, 4, 7}},
						device.SignalTemperature: {N: 288, Mean: &mean, Min: &mean, Max: &mean}}}); err != nil {
					return err
				}
			}
			id := hh + "-health-" + date
			return put(message.TypeHealth, id, message.Health{Type: message.TypeHealth, ID: id, Household: hh, Date: date, At: now, Rules: "0123456789ab"})
		}
		for k := range 2 {
			id := fmt.Sprintf("%s-tag-%d-%d", hh, f.gen, k)
			if err := put(message.TypeTag, id, message.TagChange{Type: message.TypeTag, ID: id, Household: hh, Tag: "routine.breakfast_at_home",
				Score: 0.61, Active: true, Status: "ok", Reason: "score", At: now, Rules: "0123456789ab"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.gen++
	f.nextGen = f.nextGen.Add(12 * time.Hour)
}

// BenchmarkFleet: 1,000 hubs' outboxes in one process, each with its own store and
// clock, deliver to one Segment-spec receiver over 127.0.0.1. The receiver goes down
// for a simulated day, then returns. Reported: the steady request rate (the day
// before), the peak after the return (over 5-minute and 1-minute windows) and their
// ratio, the time until every hub had drained, and duplicates before and after
// de-duplication. Run by `make bench-fleet`; the fleet's time is simulated, the
// requests are real.
func BenchmarkFleet(b *testing.B) {
	for b.Loop() {
		runFleet(b, *fleetHubs, *fleetSpread, *fleetOutage)
	}
}

func runFleet(b *testing.B, hubs int, spread, outage time.Duration) {
	dir := benchDirOf(b)
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := start
	global := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rcv := cdptest.New(cdptest.Options{WriteKey: "fleet", Now: global})
	url := rcv.Start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	rng := rand.New(rand.NewPCG(1, 2))
	fleet := make(hubHeap, 0, hubs)
	for i := range hubs {
		st, err := store.Open(filepath.Join(dir, fmt.Sprintf("hub-%04d.db", i)), &store.Options{QuotaBytes: 1 << 20, SkipCheck: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		f := &fleetHub{i: i, st: st, skew: time.Duration(rng.IntN(60_000)-30_000) * time.Millisecond,
			phase: time.Duration(rng.Int64N(int64(24 * time.Hour)))}
		clock := func() time.Time { return global().Add(f.skew) }
		tr, err := transport.NewSegment(transport.SegmentOptions{Endpoint: url, WriteKey: "fleet", Version: "bench", Client: client,
			Timeout: 5 * time.Second, Now: clock})
		if err != nil {
			b.Fatal(err)
		}
		hr := rand.New(rand.NewPCG(uint64(i), 7))
		f.d = New(st, tr, &Options{Household: fmt.Sprintf("hub%023d", i), Consent: privacy.Consent{Usage: true}, Now: clock,
			ResumeSpread: spread, Rand: hr.Float64})
		f.nextGen = start.Add(f.phase)
		heap.Push(&fleet, f)
	}
	down, up := start.Add(48*time.Hour), start.Add(48*time.Hour+outage)
	end := up.Add(48 * time.Hour)
	ctx := context.Background()
	isDown := false
	steps := 0
	began := time.Now()
	for fleet.Len() > 0 {
		f := fleet[0]
		t := fleet.next(f)
		if t.After(end) {
			break
		}
		mu.Lock()
		now = t
		mu.Unlock()
		if !isDown && !t.Before(down) && t.Before(up) {
			rcv.SetDown(true)
			isDown = true
		} else if isDown && !t.Before(up) {
			rcv.SetDown(false)
			isDown = false
		}
		if !t.Before(f.nextGen) {
			f.queue(b, t.Add(f.skew))
		}
		wake, err := f.d.Step(ctx)
		if err != nil {
			b.Fatal(err)
		}
		steps++
		f.wake = time.Time{}
		if !wake.IsZero() {
			f.wake = wake.Add(-f.skew) // in the fleet's time
			if !f.wake.After(t) {
				f.wake = t.Add(time.Millisecond)
			}
		}
		if !t.Before(up) && f.drained.IsZero() {
			if p := f.d.Health().Pending; p.Queued == 0 && p.Batches == 0 {
				f.drained = t
			}
		}
		heap.Fix(&fleet, 0)
	}
	// Rates: the steady day before the outage, the day after the return.
	arr := rcv.Arrivals()
	count := func(from, to time.Time) int {
		n := 0
		for _, a := range arr {
			if !a.Before(from) && a.Before(to) {
				n++
			}
		}
		return n
	}
	steadyPerMin := float64(count(start.Add(24*time.Hour), down)) / (24 * 60)
	peak := func(w time.Duration) float64 {
		best := 0
		for t := up; t.Before(up.Add(24 * time.Hour)); t = t.Add(time.Minute) {
			best = max(best, count(t, t.Add(w)))
		}
		return float64(best) / w.Minutes()
	}
	p15, p5, p1 := peak(15*time.Minute), peak(5*time.Minute), peak(time.Minute)
	var hourly []int
	for h := range 24 {
		hourly = append(hourly, count(up.Add(time.Duration(h)*time.Hour), up.Add(time.Duration(h+1)*time.Hour)))
	}
	b.Logf("requests per hour after the return: %v (steady: %.0f/h)", hourly, steadyPerMin*60)
	var first []int
	for m := 0; m < 60; m += 5 {
		first = append(first, count(up.Add(time.Duration(m)*time.Minute), up.Add(time.Duration(m+5)*time.Minute)))
	}
	b.Logf("per 5 minutes in the first hour: %v", first)
	var drain []time.Duration
	for _, f := range fleet {
		if !f.drained.IsZero() {
			drain = append(drain, f.drained.Sub(up))
		} else {
			drain = append(drain, end.Sub(up))
		}
	}
	sort.Slice(drain, func(i, j int) bool { return drain[i] < drain[j] })
	c := rcv.Counts()
	b.Logf("%d hubs, receiver down %s, resume_spread %s: %d steps in %s; steady %.2f req/min; peak after the return %.2f req/min over 15 min (%.1f×), %.2f over 5 min (%.1f×), %.2f over 1 min (%.1f×); drained: median %s, all %s; receiver %+v",
		hubs, outage, spreadOr(spread), steps, time.Since(began).Round(time.Second), steadyPerMin, p15, p15/steadyPerMin, p5, p5/steadyPerMin, p1, p1/steadyPerMin,
		drain[len(drain)/2].Round(time.Minute), drain[len(drain)-1].Round(time.Minute), c)
	b.ReportMetric(steadyPerMin/60, "steady-req/s")
	b.ReportMetric(p15/60, "peak15m-req/s")
	b.ReportMetric(p15/steadyPerMin, "peak15m/steady")
	b.ReportMetric(p5/steadyPerMin, "peak5m/steady")
	b.ReportMetric(drain[len(drain)-1].Hours(), "drain-h")
	b.ReportMetric(float64(c.Duplicates), "dups")
	b.ReportMetric(float64(c.Unique), "unique")
	// After de-duplication: the unique events are each message once.
	seen := map[string]bool{}
	for _, e := range rcv.Events() {
		if seen[e.MessageID] {
			b.Fatalf("duplicate %s after de-duplication", e.MessageID)
		}
		seen[e.MessageID] = true
	}
}

func spreadOr(d time.Duration) time.Duration {
	if d == 0 {
		return 24 * time.Hour
	}
	return d
}

// benchDirOf is a directory on tmpfs when there is one (1,000 stores' fsyncs measure
// the code, not the disk).
func benchDirOf(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "hearth-fleet-"); err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}
