package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/store/storetest"
)

func counts(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

func events(t *testing.T, st *store.Store) []device.Reading {
	t.Helper()
	var out []device.Reading
	if _, err := st.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error { out = append(out, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func ok(dev string, seq uint64) device.Reading {
	return device.Reading{Device: dev, Kind: device.KindFridge, Signal: device.SignalTemperature, Value: 4.5, Unit: "C", Boot: 1, Seq: seq}
}

// Bad input is refused whole with a reason naming the reading and what is wrong, and
// counted; nothing of the batch is stored.
func TestBadInputRefusedWhole(t *testing.T) {
	hub := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		bad  func(*device.Reading)
		want string // in the error
	}{
		{"NaN", func(r *device.Reading) { r.Value = math.NaN() }, "not a finite number"},
		{"+Inf", func(r *device.Reading) { r.Value = math.Inf(1) }, "not a finite number"},
		{"-Inf", func(r *device.Reading) { r.Value = math.Inf(-1) }, "not a finite number"},
		{"huge", func(r *device.Reading) { r.Value = 1e300 }, "not a finite number"},
		{"empty id", func(r *device.Reading) { r.Device = "" }, "empty id"},
		{"bad id", func(r *device.Reading) { r.Device = "fridge/../1" }, `character '/'`},
		{"long id", func(r *device.Reading) { r.Device = strings.Repeat("x", 65) }, "longer than 64"},
		{"unknown kind", func(r *device.Reading) { r.Kind = "toaster-oven" }, `unknown kind "toaster-oven"`},
		{"unknown signal", func(r *device.Reading) { r.Signal = "smell" }, `unknown signal "smell"`},
		{"long label", func(r *device.Reading) { r.Label = strings.Repeat("l", 65) }, "too long"},
		{"before 1970", func(r *device.Reading) { r.DeviceTime = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }, "impossible timestamp 1969-12-31"},
		{"year 2300", func(r *device.Reading) { r.DeviceTime = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, "impossible timestamp 2300-01-01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := storetest.Open(t, nil)
			reg := prometheus.NewRegistry()
			in := New(st, &Options{Now: func() time.Time { return hub }, Registerer: reg})
			rs := []device.Reading{ok("f1", 1), ok("f1", 2), ok("f1", 3)}
			c.bad(&rs[1])
			err := device.Commit(context.Background(), in, rs)
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "reading 2 of 3") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrRejected naming reading 2 of 3 and %q", err, c.want)
			}
			if n := st.LastSeq(); n != 0 {
				t.Errorf("%d readings stored from a refused batch", n)
			}
			if got := counts(t, reg)["hearth_ingest_readings_total/invalid"]; got != 3 {
				t.Errorf("invalid counter = %v, want 3", got)
			}
		})
	}
}

// An enormous batch is refused by the store whole, with its reason counted, and the
// next batch goes through.
func TestEnormousBatch(t *testing.T) {
	st := storetest.Open(t, &store.Options{MaxBatch: 100})
	reg := prometheus.NewRegistry()
	in := New(st, &Options{Registerer: reg})
	rs := make([]device.Reading, 101)
	for i := range rs {
		rs[i] = ok("f1", uint64(i+1))
	}
	err := device.Commit(context.Background(), in, rs)
	if !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "101 readings") {
		t.Fatalf("err = %v, want ErrTooLarge naming 101 readings", err)
	}
	if st.LastSeq() != 0 {
		t.Fatal("part of an enormous batch was stored")
	}
	if c := counts(t, reg)["hearth_ingest_readings_total/refused"]; c != 101 {
		t.Errorf("refused = %v, want 101", c)
	}
	if h := st.Health(); h.Refused["too_large"] != 101 {
		t.Errorf("store health refused too_large = %d, want 101", h.Refused["too_large"])
	}
	if err := device.Commit(context.Background(), in, rs[:100]); err != nil {
		t.Fatal(err)
	}
}

// The time rule (package doc), with a fake hub clock: which device times are
// trusted, and that no clock jump reorders the log.
func TestTimeRule(t *testing.T) {
	st := storetest.Open(t, nil)
	reg := prometheus.NewRegistry()
	var hub time.Time
	in := New(st, &Options{Now: func() time.Time { return hub }, Registerer: reg, MaxSkew: 5 * time.Minute})
	set := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		name       string
		hub        time.Time
		devTime    time.Time
		wantDevice bool // device time kept (and used as event time)
	}{
		{"hub set, device agrees", set, set.Add(-time.Second), true},
		{"hub set, device 4m ahead", set, set.Add(4 * time.Minute), true},
		{"hub set, device 6m ahead", set, set.Add(6 * time.Minute), false},
		{"hub set, device unset (2000)", set, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"hub set, device hours behind", set, set.Add(-3 * time.Hour), true}, // a late upload
		{"hub in 1970 (no RTC), device set", time.Unix(42, 0), set.Add(time.Minute), true},
		{"hub in 1970, device in 1970", time.Unix(43, 0), time.Unix(40, 0), false},
		{"hub in 1970, device without clock", time.Unix(44, 0), time.Time{}, false},
		{"NTP: hub jumps to today", set.Add(2 * time.Minute), set.Add(2 * time.Minute), true},
		// A hub clock past the floor is trusted even when it jumped back: a device
		// 63 minutes ahead of it is not, and the event takes the (earlier) hub time,
		// yet its sequence still puts it after every event before it.
		{"hub jumps back an hour", set.Add(-time.Hour), set.Add(3 * time.Minute), false},
	}
	for i, s := range steps {
		hub = s.hub
		r := ok("f1", uint64(i+1))
		r.DeviceTime = s.devTime
		if err := device.Commit(context.Background(), in, []device.Reading{r}); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	got := events(t, st)
	if len(got) != len(steps) {
		t.Fatalf("%d events, want %d", len(got), len(steps))
	}
	untrusted := 0
	for i, s := range steps {
		r := got[i]
		if r.Seq != uint64(i+1) {
			t.Fatalf("event %d is seq %d: the log is not in arrival order", i+1, r.Seq)
		}
		if !r.HubTime.Equal(s.hub) {
			t.Errorf("%s: hub time %v, want %v", s.name, r.HubTime, s.hub)
		}
		if kept := !r.DeviceTime.IsZero(); kept != s.wantDevice {
			t.Errorf("%s: device time kept = %v, want %v", s.name, kept, s.wantDevice)
		}
		want := s.hub
		if s.wantDevice {
			want = s.devTime
		} else if !s.devTime.IsZero() {
			untrusted++
		}
		if !r.Time().Equal(want) {
			t.Errorf("%s: event time %v, want %v", s.name, r.Time(), want)
		}
	}
	if c := counts(t, reg)["hearth_ingest_readings_total/clock"]; c != float64(untrusted) {
		t.Errorf("clock counter = %v, want %d", c, untrusted)
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("commit: %w", store.ErrQuota), true},
		{fmt.Errorf("commit: %w", store.ErrIntakeStopped), true},
		{store.ErrClosed, true},
		{fmt.Errorf("%w: impossible timestamp", ErrRejected), false},
		{store.ErrTooLarge, false},
		{errors.New("disk quota exceeded"), false}, // the words are not the error
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
