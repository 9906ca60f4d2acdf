package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/sync/cdptest"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/transport"
)

const household = "hhhhhhhhhhhhhhhhhhhhhhhhhh"

// clock is the hub clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	c.mu.Unlock()
}
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// enqueueDays queues one device-day message per device and date, as the builder
// makes them.
func enqueueDays(t *testing.T, st *store.Store, at time.Time, devices []string, dates ...string) []string {
	t.Helper()
	var ids []string
	if err := st.Update(func(tx *store.Tx) error {
		for _, date := range dates {
			for _, dev := range devices {
				id := fmt.Sprintf("msg-%s-%s", dev, date)
				n := uint32(len(ids) + 1)
				dd := message.DeviceDay{Type: message.TypeDeviceDay, ID: id, Household: household, Device: dev, Kind: device.KindFridge,
					Date: date, Rules: "rules-test", Signals: map[device.Signal]*message.Signal{device.SignalDoor: {N: n, Sessions: n / 2}}}
				body, _ := json.Marshal(dd)
				if err := tx.Enqueue(&store.Message{Enqueued: at, Type: message.TypeDeviceDay, ID: id, Category: privacy.Usage,
					At: message.DayEnd(date, time.UTC), Body: body}); err != nil {
					return err
				}
				ids = append(ids, id)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func dates(from time.Time, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = from.AddDate(0, 0, i).Format(time.DateOnly)
	}
	return out
}

type rig struct {
	st  *store.Store
	rcv *cdptest.Receiver
	px  *cdptest.Proxy
	clk *clock
	d   *Delivery
	key string
}

// newRig: a store, a receiver behind a fault proxy, a Segment transport to it.
func newRig(t *testing.T, o Options, keyFile string) *rig {
	t.Helper()
	r := &rig{st: storetest.Open(t, nil), clk: &clock{now: time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)}, key: "wk-test"}
	r.rcv = cdptest.New(cdptest.Options{WriteKey: r.key, Now: r.clk.Now})
	url := r.rcv.Start(t)
	px, err := cdptest.NewProxy(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	r.px = px
	so := transport.SegmentOptions{Endpoint: "http://" + px.Addr(), WriteKey: r.key, Version: "test", Timeout: 2 * time.Second,
		Now: r.clk.Now}
	if keyFile != "" {
		so.WriteKey, so.WriteKeyFile = "", keyFile
	}
	tr, err := transport.NewSegment(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	o.Household, o.Now = household, r.clk.Now
	if o.Consent == (privacy.Consent{}) {
		o.Consent = privacy.Consent{Usage: true}
	}
	if o.BatchCount == 0 {
		o.BatchCount = 5
	}
	r.d = New(r.st, tr, &o)
	return r
}

// drain steps delivery, moving the clock to each wake, until nothing is queued or
// batched (or steps run out).
func (r *rig) drain(t *testing.T, steps int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < steps; i++ {
		wake, err := r.d.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := r.d.Health().Pending
		if p.Queued == 0 && p.Batches == 0 {
			return
		}
		if wake.IsZero() {
			r.clk.Add(time.Minute)
		} else {
			r.clk.Set(wake)
		}
	}
	t.Fatalf("not drained after %d steps: %+v", steps, r.d.Health())
}

// inOrder checks that each device's days arrived in date order, every one once.
func inOrder(t *testing.T, evs []cdptest.Event, want []string) {
	t.Helper()
	last := map[string]string{}
	got := map[string]bool{}
	for _, e := range evs {
		dev, _ := e.Properties["device"].(string)
		date, _ := e.Properties["date"].(string)
		if date <= last[dev] {
			t.Errorf("device %s: %s arrived after %s", dev, date, last[dev])
		}
		last[dev] = date
		got[e.MessageID] = true
	}
	for _, id := range want {
		if !got[id] {
			t.Errorf("message %s never arrived", id)
		}
	}
}

// Every fault the link and the receiver can throw, one after another: everything
// arrives, in order per device; duplicates at the receiver stay within one batch per
// fault that can make one, none after de-duplication; the poisoned batch goes to the
// dead letters without blocking the rest; Retry-After is honoured.
func TestDeliveryThroughFaults(t *testing.T) {
	r := newRig(t, Options{}, "")
	devs := []string{"dev-a", "dev-b"}
	ids := enqueueDays(t, r.st, r.clk.Now(), devs, dates(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 8)...) // 16 messages
	poison := ids[10]                                                                                        // in the third batch of 5
	r.rcv.Poison(poison)
	// The link's faults first: a reset before the receiver, one after it (its answer
	// lost), a black hole; answers delayed.
	r.px.Inject(cdptest.Reset, cdptest.ResetAfterForward, cdptest.Blackhole)
	r.px.SetLatency(20 * time.Millisecond)
	r.clk.Add(time.Minute) // past batch_age
	for i := 0; i < 50 && (r.px.Pending() > 0 || r.rcv.Counts().Accepted < 2); i++ {
		wake, err := r.d.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r.clk.Set(wake)
	}
	// Then the receiver's: 503, 429 with Retry-After in seconds and as a date, 408, 502.
	r.px.SetLatency(0)
	notBefore := r.clk.Now().Add(time.Hour).Truncate(time.Second) // an HTTP date has whole seconds
	r.rcv.FailNext(1, http.StatusServiceUnavailable, "")
	r.rcv.FailNext(1, http.StatusTooManyRequests, "7")
	r.rcv.FailNext(1, http.StatusTooManyRequests, notBefore.UTC().Format(http.TimeFormat))
	r.rcv.FailNext(1, http.StatusRequestTimeout, "")
	r.rcv.FailNext(1, http.StatusBadGateway, "")
	firstFault := len(r.rcv.Arrivals())
	r.drain(t, 200)
	c := r.rcv.Counts()
	t.Logf("receiver: %+v; proxy applied %v", c, r.px.Applied())
	want := append(append([]string(nil), ids[:10]...), ids[15:]...)
	if c.Unique != len(want) {
		t.Errorf("%d unique events, want %d (all but the poisoned batch of 5)", c.Unique, len(want))
	}
	// Only ResetAfterForward delivers a batch whose answer is lost: one batch.
	if c.Duplicates > 5 {
		t.Errorf("%d duplicates, want at most one batch (5)", c.Duplicates)
	}
	if c.Duplicates == 0 {
		t.Errorf("no duplicate: the reset after forwarding did not reach the receiver (proxy: %v)", r.px.Applied())
	}
	inOrder(t, r.rcv.Events(), want)
	var dead []store.DeadLetter
	_ = r.st.View(func(tx *store.Tx) error {
		return tx.DeadLetters(func(d store.DeadLetter) error { dead = append(dead, d); return nil })
	})
	if len(dead) != 1 || dead[0].Reason != "rejected" || len(dead[0].Batch.Messages) != 5 || dead[0].Batch.Messages[0].ID != ids[10] {
		t.Errorf("dead letters %+v, want the poisoned batch", dead)
	}
	if h := r.d.Health(); h.Pending.DeadLetters != 1 || h.LastSuccess.IsZero() || h.Errors < 8 {
		t.Errorf("health %+v", h)
	}
	// Retry-After: the request after the 429 "7" came at least 7 s later, and the one
	// after the 429 with a date an hour ahead at least an hour later.
	arr := r.rcv.Arrivals()[firstFault:]
	if len(arr) < 4 || arr[2].Sub(arr[1]) < 7*time.Second || arr[3].Before(notBefore) {
		t.Errorf("requests at %v: want the one after the first 429 ≥7s later, the one after the second at or after %s", arr, notBefore)
	}
}

// A batch is formed once: its retry sends the same id and messages, and messages
// queued meanwhile go to a later batch.
func TestBatchKeepsItsIDAndMessages(t *testing.T) {
	st := storetest.Open(t, nil)
	clk := &clock{now: time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)}
	rcv := cdptest.New(cdptest.Options{WriteKey: "tok"})
	url := rcv.Start(t)
	px, err := cdptest.NewProxy(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	tokf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokf, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys []string
	tr, err := transport.NewHTTPS(transport.HTTPSOptions{URL: "http://" + px.Addr() + "/v1/hearth", TokenFile: tokf, Version: "test",
		Client: &http.Client{Transport: recordKeys(&mu, &keys)}})
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, tr, &Options{Household: household, Consent: privacy.Consent{Usage: true}, BatchCount: 4, Now: clk.Now})
	first := enqueueDays(t, st, clk.Now(), []string{"d"}, dates(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 3)...)
	clk.Add(time.Minute)
	px.Inject(cdptest.ResetAfterForward)
	if _, err := d.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	more := enqueueDays(t, st, clk.Now(), []string{"d"}, dates(time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), 3)...)
	clk.Add(time.Hour)
	for i := 0; i < 10 && rcv.Counts().Unique < 6; i++ {
		if _, err := d.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
	}
	c := rcv.Counts()
	if c.Unique != 6 || c.Duplicates != 3 {
		t.Fatalf("receiver %+v, want 6 unique and the first batch's 3 again", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 3 || keys[0] != keys[1] || keys[2] == keys[0] {
		t.Errorf("Idempotency-Keys %v: want the first batch's twice, then another", keys)
	}
	evs := rcv.Events()
	for i, id := range append(first, more...) {
		if evs[i].MessageID != id {
			t.Errorf("event %d is %s, want %s", i, evs[i].MessageID, id)
		}
	}
}

type keyRecorder struct {
	mu   *sync.Mutex
	keys *[]string
}

func recordKeys(mu *sync.Mutex, keys *[]string) http.RoundTripper { return keyRecorder{mu, keys} }

func (k keyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	k.mu.Lock()
	*k.keys = append(*k.keys, r.Header.Get("Idempotency-Key"))
	k.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// A wrong write key pauses delivery, says so, and loses nothing; a fixed key resumes.
func TestWrongWriteKeyPausesThenResumes(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "write.key")
	if err := os.WriteFile(keyFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, Options{AuthRetry: 10 * time.Minute}, keyFile)
	ids := enqueueDays(t, r.st, r.clk.Now(), []string{"d"}, dates(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 7)...)
	r.clk.Add(time.Minute)
	for range 3 {
		if _, err := r.d.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.clk.Add(time.Minute)
	}
	h := r.d.Health()
	if h.Paused == "" || h.LastErrorClass != "auth" || !strings.Contains(h.Paused, "401") {
		t.Fatalf("not paused: %+v", h)
	}
	if c := r.rcv.Counts(); c.Unique != 0 || c.Rejected != 1 {
		t.Errorf("receiver %+v: want one refused request while paused (it retries every 10m, not every step)", c)
	}
	if n := h.Pending.Queued + h.Pending.BatchMessages; n != len(ids) {
		t.Errorf("%d messages kept while paused, want %d", n, len(ids))
	}
	if err := os.WriteFile(keyFile, []byte(r.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.drain(t, 50)
	if c := r.rcv.Counts(); c.Unique != len(ids) {
		t.Errorf("after the key was fixed: %+v, want %d", c, len(ids))
	}
	if h := r.d.Health(); h.Paused != "" {
		t.Errorf("still paused: %+v", h)
	}
}

// Consent is checked again when a message is sent: a household that withdrew it
// sends nothing of that category, and the messages are taken out, counted.
func TestConsentCheckedAtSend(t *testing.T) {
	r := newRig(t, Options{Consent: privacy.Consent{Sensitive: true}}, "") // usage withdrawn
	enqueueDays(t, r.st, r.clk.Now(), []string{"d"}, "2026-05-01", "2026-05-02")
	if err := r.st.Update(func(tx *store.Tx) error { // a simulated device's: no personal data
		body, _ := json.Marshal(message.DeviceDay{Type: message.TypeDeviceDay, ID: "sim-1", Household: household, Device: "s",
			Date: "2026-05-01", Rules: "r", Signals: map[device.Signal]*message.Signal{device.SignalDoor: {N: 1}}})
		return tx.Enqueue(&store.Message{Enqueued: r.clk.Now(), Type: message.TypeDeviceDay, ID: "sim-1", Category: privacy.Usage,
			Simulated: true, At: r.clk.Now(), Body: body})
	}); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(time.Minute)
	r.drain(t, 20)
	evs := r.rcv.Events()
	if len(evs) != 1 || evs[0].MessageID != "sim-1" {
		t.Errorf("sent %v, want only the simulated device's message", evs)
	}
}

// A message over Segment's 32 KB is never sent: it goes to the dead letters, counted,
// and the messages after it are delivered.
func TestOversizeMessageNeverSent(t *testing.T) {
	r := newRig(t, Options{}, "")
	enqueueDays(t, r.st, r.clk.Now(), []string{"d"}, "2026-05-01")
	if err := r.st.Update(func(tx *store.Tx) error {
		big := map[string]uint32{}
		for i := range 3000 {
			big[fmt.Sprintf("item-%05d", i)] = uint32(i)
		}
		body, _ := json.Marshal(message.DeviceDay{Type: message.TypeDeviceDay, ID: "big", Household: household, Device: "d",
			Date: "2026-05-02", Rules: "r", Signals: map[device.Signal]*message.Signal{device.SignalInventory: {N: 1, Stocked: big}}})
		return tx.Enqueue(&store.Message{Enqueued: r.clk.Now(), Type: message.TypeDeviceDay, ID: "big", Category: privacy.Usage, At: r.clk.Now(), Body: body})
	}); err != nil {
		t.Fatal(err)
	}
	enqueueDays(t, r.st, r.clk.Now(), []string{"d"}, "2026-05-03")
	r.clk.Add(time.Minute)
	r.drain(t, 20)
	if c := r.rcv.Counts(); c.Unique != 2 || c.Rejected != 0 {
		t.Errorf("receiver %+v: want the 2 small messages, nothing refused", c)
	}
	var dead []store.DeadLetter
	_ = r.st.View(func(tx *store.Tx) error {
		return tx.DeadLetters(func(d store.DeadLetter) error { dead = append(dead, d); return nil })
	})
	if len(dead) != 1 || dead[0].Reason != "too_large" || dead[0].Batch.Messages[0].ID != "big" {
		t.Errorf("dead letters %+v", dead)
	}
}

// The bandwidth cap holds: no hour window carries more than max_bytes_per_hour.
func TestBandwidthCap(t *testing.T) {
	r := newRig(t, Options{MaxBytesPerHour: 800, BatchCount: 2}, "")
	enqueueDays(t, r.st, r.clk.Now(), []string{"a", "b"}, dates(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), 6)...)
	start := r.clk.Now()
	r.clk.Add(time.Minute)
	r.drain(t, 100)
	arr := r.rcv.Arrivals()
	hours := r.clk.Now().Sub(start).Hours()
	if len(arr) != 6 || hours < 2 {
		t.Errorf("%d requests over %.1f h: the cap of 800 B/h should spread 6 batches of ~350 B over ≥ 2 h", len(arr), hours)
	}
	perHour := map[int64]int{}
	for _, a := range arr {
		perHour[a.Sub(arr[0]).Milliseconds()/3_600_000]++
	}
	for h, n := range perHour {
		if n > 2 {
			t.Errorf("hour %d carried %d batches", h, n)
		}
	}
}

// After a long outage a hub retries once every resume window, at a phase of its own,
// the window following the outage: short after a short outage, spread over two to
// four times a long one, never past ResumeSpread; a hub keeps its slot while its
// window holds. Before the outage is long: full jitter under the backoff bound; never
// before a Retry-After.
func TestResumeWindowFollowsOutage(t *testing.T) {
	tr, _ := transport.NewFile(t.TempDir())
	st := storetest.Open(t, nil)
	now := time.Date(2026, 5, 4, 10, 17, 3, 0, time.UTC)
	const hubs = 2000
	var ds []*Delivery
	for i := range hubs {
		d := New(st, tr, &Options{Household: fmt.Sprintf("household-%d", i), MaxBackoff: 5 * time.Minute, LongOutage: 10 * time.Minute,
			ResumeSpread: 24 * time.Hour})
		ds = append(ds, d)
		d.Unregister()
	}
	waits := func(outage time.Duration) []time.Duration {
		var w []time.Duration
		for _, d := range ds {
			w = append(w, d.retryWait(40, 0, outage, now))
		}
		return w
	}
	for _, outage := range []time.Duration{30 * time.Minute, 3 * time.Hour, 5 * time.Hour} {
		ws := waits(outage)
		// Every hub tries within one window (< 4·the outage, + 1% jitter), and the
		// fleet is spread: windows between 2D and 4D, log-uniform, so the first 2D
		// holds 1/(2 ln 2) ≈ 72% of first tries, evenly (0.36/D per unit of time).
		var per [8]int
		for i, w := range ws {
			if w <= 0 || w > 4*outage+outage/25 {
				t.Fatalf("outage %s: hub %d waits %s", outage, i, w)
			}
			if w < 2*outage {
				per[int(w*4/outage)]++
			}
		}
		for i, n := range per {
			if want := hubs * 0.7213 / 8; float64(n) < want*0.75 || float64(n) > want*1.25 {
				t.Errorf("outage %s: eighth %d of twice it holds %d of %d first tries, want about %.0f (%v)", outage, i, n, hubs, want, per)
			}
		}
	}
	// Past ResumeSpread every window is ResumeSpread: uniform over it, and a hub
	// keeps its slot from one window to the next.
	const spread = 24 * time.Hour
	var per [8]int
	for i, d := range ds {
		w := d.retryWait(40, 0, 72*time.Hour, now)
		if w <= 0 || w > spread+spread/100 {
			t.Fatalf("hub %d waits %s", i, w)
		}
		per[min(int(w*8/spread), 7)]++
		if w2 := d.retryWait(41, 0, 72*time.Hour+w, now.Add(w)); w2 < spread-spread/100 || w2 > spread+spread/100 {
			t.Fatalf("hub %d: next slot after %s, want one window", i, w2)
		}
	}
	for i, n := range per {
		if n < 180 || n > 320 {
			t.Errorf("eighth %d of the window holds %d of %d hubs (%v)", i, n, hubs, per)
		}
	}
	d := ds[0]
	var short []time.Duration
	for range 500 {
		short = append(short, d.retryWait(40, 0, 5*time.Minute, now))
	}
	sort.Slice(short, func(i, j int) bool { return short[i] < short[j] })
	if short[len(short)-1] > 5*time.Minute || short[len(short)/2] < 2*time.Minute {
		t.Errorf("short outage: waits up to %s, median %s; want full jitter under 5m", short[len(short)-1], short[len(short)/2])
	}
	if ra := d.retryWait(1, 90*time.Second, 0, now); ra < 90*time.Second {
		t.Errorf("Retry-After 90s: waited %s", ra)
	}
}

// Messages taken out while a batch is formed (no consent) do not disturb the order of
// the others: the batch holds every allowed message in queue order.
func TestWithheldMessagesKeepOrder(t *testing.T) {
	r := newRig(t, Options{BatchCount: 100}, "")
	var want []string
	if err := r.st.Update(func(tx *store.Tx) error {
		for i := range 40 {
			id := fmt.Sprintf("m%02d", i)
			cat := privacy.Usage
			if i%3 == 1 {
				cat = privacy.Sensitive // not consented: withheld
			} else {
				want = append(want, id)
			}
			body, _ := json.Marshal(message.DeviceDay{Type: message.TypeDeviceDay, ID: id, Household: household, Device: "d",
				Date: fmt.Sprintf("2026-04-%02d", i%28+1), Rules: "r", Signals: map[device.Signal]*message.Signal{device.SignalDoor: {N: 1}}})
			if err := tx.Enqueue(&store.Message{Enqueued: r.clk.Now(), Type: message.TypeDeviceDay, ID: id, Category: cat, At: r.clk.Now(), Body: body}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(time.Minute)
	if _, err := r.d.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.rcv.Events() {
		got = append(got, e.MessageID)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("first batch:\n got %v\nwant %v", got, want)
	}
}
