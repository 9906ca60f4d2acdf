package serial_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/serial"
	"github.com/hearth-iot/hearth/device/serial/serialtest"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/poll"
)

// waitFor is poll.Until: the one way these tests wait.
var waitFor = poll.Until

// rig is a hub: a real store behind ingest, a serial Source on a symlinked pty.
type rig struct {
	t    *testing.T
	st   *store.Store
	reg  *prometheus.Registry
	link string
	src  *serial.Source
	done chan error
}

func newRig(t *testing.T, p *serialtest.PTY) *rig {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "hearth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, reg: prometheus.NewRegistry(), link: filepath.Join(dir, "fridge.tty"), done: make(chan error, 1)}
	r.point(p)
	r.src, err = serial.New(&serial.Options{Path: r.link, Name: "fridge", Committed: st.Committed, Registerer: r.reg,
		ReadTimeout: 100 * time.Millisecond, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := ingest.New(st, nil)
	go func() { r.done <- r.src.Run(ctx, in) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return r
}

// point re-points the port's symlink, as udev does when an adapter comes back.
func (r *rig) point(p *serialtest.PTY) {
	tmp := r.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(p.Path, tmp); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.link); err != nil {
		r.t.Fatal(err)
	}
}

// metric returns the value of a hearth_serial_ counter or gauge with the given label.
func (r *rig) metric(name, label, value string) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if label == "" || hasLabel(m, label, value) {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// checkStored asserts the store holds exactly the appliance's items, each once.
func (r *rig) checkStored(items []serialtest.Item) {
	r.t.Helper()
	type key struct{ boot, seq uint64 }
	want := map[key]serialtest.Item{}
	for _, it := range items {
		want[key{it.Boot, it.Seq}] = it
	}
	got := map[key]int{}
	n := 0
	_, err := r.st.ReadEvents(0, 0, func(_ uint64, rd *device.Reading) error {
		n++
		k := key{rd.Boot, rd.Seq}
		got[k]++
		it, ok := want[k]
		switch {
		case !ok:
			return fmt.Errorf("stored reading %s boot %x seq %d was never sent", rd.Device, rd.Boot, rd.Seq)
		case got[k] > 1:
			return fmt.Errorf("boot %x seq %d stored %d times", rd.Boot, rd.Seq, got[k])
		case rd.Value != it.Value || rd.Device != "fridge-sim" || rd.Kind != device.KindFridge:
			return fmt.Errorf("boot %x seq %d stored as %s %s %v, sent %v", rd.Boot, rd.Seq, rd.Device, rd.Signal, rd.Value, it.Value)
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if n != len(items) || len(got) != len(want) {
		r.t.Fatalf("store holds %d readings (%d distinct), appliance sent %d items", n, len(got), len(items))
	}
}

// Several thousand readings over a real pty with every fault injected: every item
// stored exactly once, every damaged frame counted, duplicates acked not stored.
func TestPTYAllFaults(t *testing.T) {
	p, err := serialtest.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := newRig(t, p)
	const items = 5000
	app := serialtest.New(serialtest.Options{Items: items, Timeout: 150 * time.Millisecond, HelloEvery: 100 * time.Millisecond,
		Seed: 7, Faults: serialtest.Faults{Garbage: 0.05, DropBytes: 0.03, BadCRC: 0.03, Retransmit: 0.05, RebootEvery: 1300}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := app.Run(ctx, p.Master); !errors.Is(err, serialtest.ErrDone) {
		t.Fatalf("appliance: %v (stats %+v)", err, app.Stats())
	}
	s := app.Stats()
	t.Logf("appliance: %+v", s)
	r.checkStored(app.Items())
	if s.Boots < 4 {
		t.Errorf("boots = %d, want ≥ 4 (a reboot every 1300 of 5000 items)", s.Boots)
	}
	// Faults counted exactly: every injected damaged segment is one fault. The last
	// ones may still be in the pty when the appliance sees its last ACK: wait for the
	// hub to read them (bounded), then compare.
	framingCount := func() float64 {
		var n float64
		for _, c := range []string{"too_long", "bad_cobs", "truncated", "bad_length", "bad_crc", "bad_version"} {
			n += r.metric("hearth_serial_faults_total", "class", c)
		}
		return n
	}
	waitFor(t, "the last damaged frames to be read", 5*time.Second, func() bool { return int(framingCount()) >= s.FramingFaults() })
	if framing := framingCount(); int(framing) != s.FramingFaults() {
		t.Errorf("framing faults counted %v, injected %d (%v)", framing, s.FramingFaults(), s.Injected)
	}
	for _, c := range []string{"bad_crc", "too_long", "bad_version"} {
		if got := r.metric("hearth_serial_faults_total", "class", c); int(got) < s.Injected[c] {
			t.Errorf("%s counted %v, injected %d", c, got, s.Injected[c])
		}
	}
	for _, c := range []string{"bad_payload", "unknown_type"} {
		if got := r.metric("hearth_serial_faults_total", "class", c); int(got) != s.Injected[c] {
			t.Errorf("%s counted %v, injected %d", c, got, s.Injected[c])
		}
	}
	if s.Injected["bad_crc"] == 0 || s.Injected["drop_bytes"] == 0 || s.Injected["retransmit"] == 0 || s.Injected["garbage"] == 0 {
		t.Errorf("a fault was never injected: %v", s.Injected)
	}
	if d := r.metric("hearth_serial_items_total", "result", "duplicate"); d == 0 {
		t.Error("no duplicate items seen, though frames were sent twice")
	}
	if c := r.metric("hearth_serial_items_total", "result", "committed"); c < items {
		t.Errorf("committed items %v < %d", c, items)
	}
	if s.Nacks["NACK_REASON_SEQ_GAP"] == 0 {
		t.Errorf("no SEQ_GAP Nack reached the appliance: %v", s.Nacks)
	}
}

// The pty is closed mid-stream (the adapter unplugged) and a new one appears under the
// same symlink: the source reconnects and the appliance's retransmissions fill the gap
// without duplicates.
func TestPTYUnplugReplug(t *testing.T) {
	p1, err := serialtest.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, p1)
	const items = 3000
	app := serialtest.New(serialtest.Options{Items: items, Timeout: 100 * time.Millisecond, HelloEvery: 100 * time.Millisecond,
		Rate: 20000, Seed: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- app.Run(ctx, p1.Master) }()
	waitFor(t, "1000 items acked before the unplug", time.Minute, func() bool { return app.Stats().Acked >= 1000 })
	p1.Close()
	if err := <-first; err == nil || errors.Is(err, serialtest.ErrDone) {
		t.Fatalf("appliance on the unplugged link: %v", err)
	}
	waitFor(t, "the source to notice the unplug", time.Minute, func() bool {
		return r.metric("hearth_serial_reconnects_total", "", "") >= 1
	})
	before := app.Stats()
	if before.Generated == items && before.Acked == items {
		t.Fatal("everything was acked before the unplug: the test proves nothing")
	}
	p2, err := serialtest.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	r.point(p2)
	if err := app.Run(ctx, p2.Master); !errors.Is(err, serialtest.ErrDone) {
		t.Fatalf("appliance after replug: %v (stats %+v)", err, app.Stats())
	}
	s := app.Stats()
	t.Logf("before unplug: %+v; end: %+v", before, s)
	r.checkStored(app.Items())
	if s.Resent == 0 {
		t.Error("nothing was retransmitted across the unplug")
	}
	waitFor(t, "the port to be open", time.Minute, func() bool { return r.metric("hearth_serial_connected", "", "") == 1 })
}
