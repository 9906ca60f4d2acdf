package supervise

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/internal/poll"
)

func fast(reg prometheus.Registerer) *Options {
	return &Options{RestartMin: time.Millisecond, RestartMax: 4 * time.Millisecond, Registerer: reg}
}

func health(g *Group, name string) Health {
	for _, h := range g.Health() {
		if h.Name == name {
			return h
		}
	}
	return Health{}
}

// A stage that fails is restarted with backoff, again and again, and every failure
// shows in its health and metrics; once it runs, it is healthy again.
func TestFailedStageIsRestartedAndShown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	reg := prometheus.NewRegistry()
	g := New(context.Background(), "pipeline", fast(reg))
	var runs atomic.Int32
	g.Go("rollup", func(ctx context.Context, r *Reporter) error {
		if runs.Add(1) <= 3 {
			return errors.New("disk on fire")
		}
		r.OK()
		<-ctx.Done()
		return nil
	})
	poll.Until(t, "the stage to run after 3 failures", 10*time.Second, func() bool { return health(g, "rollup").LastSuccess.After(time.Time{}) })
	h := health(g, "rollup")
	if h.State != StateRunning || h.Errors != 3 || h.Restarts != 3 || h.LastError != "disk on fire" || h.Failures != 0 || !h.Healthy(1) {
		t.Fatalf("health after 3 failures and a run: %+v", h)
	}
	if v, err := metricset.Value(reg, "hearth_stage_restarts_total", "stage", "rollup"); err != nil || v != 3 {
		t.Errorf("restarts metric %v, want 3", v)
	}
	if v, err := metricset.Value(reg, "hearth_stage_up", "stage", "rollup"); err != nil || v != 1 {
		t.Errorf("up %v, want 1", v)
	}
	g.Stop()
	if h := health(g, "rollup"); h.State != StateStopped {
		t.Fatalf("after Stop: %+v", h)
	}
}

// A stage that keeps failing stays in backoff and is unhealthy; a panic is an error,
// not a crash of the agent; a stage that returns nil while it should run is a failure.
func TestPanicsAndEarlyReturnsAreFailures(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := New(context.Background(), "sources", fast(nil))
	g.Go("serial", func(context.Context, *Reporter) error { panic("nil map") })
	g.Go("sim", func(context.Context, *Reporter) error { return nil })
	poll.Until(t, "both stages to fail twice", 10*time.Second, func() bool {
		return health(g, "serial").Errors >= 2 && health(g, "sim").Errors >= 2
	})
	if h := health(g, "serial"); !strings.Contains(h.LastError, "panic: nil map") {
		t.Errorf("panicking stage: %+v", h)
	}
	// Between its panics it is restarted (running again, for a moment): it is seen
	// unhealthy while it waits in backoff, not at every instant.
	poll.Until(t, "the panicking stage to show unhealthy", 10*time.Second, func() bool { return !health(g, "serial").Healthy(1) })
	if h := health(g, "sim"); !strings.Contains(h.LastError, "returned while it should still run") {
		t.Errorf("returning stage: %+v", h)
	}
	g.Stop()
}

// A periodic step's errors are counted and shown without restarting the stage; the
// first success after them makes it healthy again.
func TestEveryRecordsFailedPasses(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := New(context.Background(), "pipeline", fast(nil))
	var n atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	g.Every("tagging", time.Millisecond, func(context.Context) error {
		n.Add(1)
		if fail.Load() {
			return errors.New("rule broke")
		}
		return nil
	})
	poll.Until(t, "three failed passes", 10*time.Second, func() bool { return health(g, "tagging").Failures >= 3 })
	h := health(g, "tagging")
	if h.State != StateFailing || h.Restarts != 0 || h.Healthy(3) || !h.Healthy(h.Failures+1) {
		t.Fatalf("after failed passes: %+v", h)
	}
	fail.Store(false)
	poll.Until(t, "a successful pass", 10*time.Second, func() bool { return health(g, "tagging").State == StateRunning })
	if h := health(g, "tagging"); h.Failures != 0 || h.Errors < 3 || h.LastError != "rule broke" {
		t.Fatalf("after recovery: %+v", h)
	}
	g.Stop()
}

func TestStageNamesAreUnique(t *testing.T) {
	g := New(context.Background(), "x", nil)
	defer g.Stop()
	g.Go("a", func(ctx context.Context, _ *Reporter) error { <-ctx.Done(); return nil })
	defer func() {
		if recover() == nil {
			t.Fatal("a second stage named a was accepted")
		}
	}()
	g.Go("a", func(ctx context.Context, _ *Reporter) error { return nil })
}

// Every stage steps on one grid: the next multiple of its interval since the epoch,
// so that stages whose intervals divide one another step at the same instant (one
// wake-up of the process, not one each).
func TestStepsFallOnOneGrid(t *testing.T) {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now      time.Duration // after base
		interval time.Duration
		want     time.Duration // after base
	}{
		{0, 2 * time.Second, 2 * time.Second},                                 // on the grid: the next instant, never now
		{1, 2 * time.Second, 2 * time.Second},                                 // just after
		{1999 * time.Millisecond, 2 * time.Second, 2 * time.Second},           // just before
		{2 * time.Second, 2 * time.Second, 4 * time.Second},                   // on the next
		{3 * time.Second, 5 * time.Second, 5 * time.Second},                   // another interval
		{7 * time.Second, 5 * time.Second, 10 * time.Second},                  //
		{7 * time.Second, 10 * time.Second, 10 * time.Second},                 // the 2s, 5s and 10s stages meet at 10s
		{9*time.Second + 1, 2 * time.Second, 10 * time.Second},                //
		{59 * time.Second, time.Minute, time.Minute},                          // a minute stage meets them at the minute
		{59*time.Second + 500*time.Millisecond, 2 * time.Second, time.Minute}, //
	} {
		now := base.Add(c.now)
		if got := now.Add(nextStep(now, c.interval)); !got.Equal(base.Add(c.want)) {
			t.Errorf("nextStep(base+%s, %s): step at base+%s, want base+%s", c.now, c.interval, got.Sub(base), c.want)
		}
	}
	// Two stages started apart wait for the same instant.
	a, b := base.Add(300*time.Millisecond), base.Add(1700*time.Millisecond)
	if !a.Add(nextStep(a, 2*time.Second)).Equal(b.Add(nextStep(b, 2*time.Second))) {
		t.Error("two 2s stages started 1.4s apart step at different instants")
	}
}
