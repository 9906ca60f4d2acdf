// Package supervise runs the agent's long-lived stages — sources, pipeline stages,
// servers — each as a function of a context, under one Group per phase of the
// agent's life. A stage that returns an error (or panics, or returns while it should
// still run) is restarted after a backoff with jitter, and shown: every stage has its
// own health (state, last success, last error, error and restart counts), exported to
// /readyz, /metrics and `hearth status`. A silent stall — the commonest complaint
// about edge agents — cannot hide: a failing stage is counted, logged and reported
// until it recovers.
//
// # Stages
//
// A stage is either a Run function (Group.Go), which runs until its context ends, or
// a periodic Step (Group.Every), which the group calls at an interval. Both receive a
// *Reporter to tell the group about progress: OK after a successful pass, Fail for an
// error the stage survives (a pass that failed and will be tried again). A Step's
// error is reported for it.
//
// # Lifecycle
//
// Start the group's stages with Go and Every, then Stop cancels them all and waits;
// a Group is not reused. Health is safe to call at any time from any goroutine.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/internal/metricset"
)

// States of a stage.
const (
	StateRunning = "running" // running; its last pass (if any) succeeded
	StateFailing = "failing" // running, but its last pass failed
	StateBackoff = "backoff" // it failed and waits to be restarted
	StateStopped = "stopped" // stopped by the group
)

// Health is a snapshot of one stage.
type Health struct {
	Name        string        `json:"name"`
	State       string        `json:"state"`
	Since       time.Time     `json:"since"`                  // when it entered State
	LastSuccess time.Time     `json:"last_success,omitzero"`  // its last successful pass
	LastError   string        `json:"last_error,omitempty"`   // its last error
	LastErrorAt time.Time     `json:"last_error_at,omitzero"` // when
	Errors      uint64        `json:"errors"`                 // errors since start: failed passes and failed runs
	Failures    int           `json:"consecutive_failures"`   // errors since its last success
	Restarts    uint64        `json:"restarts"`               // times it was restarted after failing
	Backoff     time.Duration `json:"backoff,omitempty"`      // the current wait before its restart
}

// Healthy reports whether the stage is running and has not failed maxFailures times
// in a row.
func (h Health) Healthy(maxFailures int) bool {
	return h.State != StateBackoff && (h.State != StateFailing || h.Failures < maxFailures)
}

// Options tune a Group. Zero values mean the documented defaults.
type Options struct {
	// RestartMin and RestartMax bound the wait before a failed stage is restarted: it
	// starts at RestartMin, doubles with each failure in a row (full jitter) up to
	// RestartMax, and starts again at RestartMin after the stage has run for
	// RestartMax without failing (defaults 1s and 1m).
	RestartMin, RestartMax time.Duration
	// Logger receives a line for each failure (the first of a run of identical errors
	// at Error, repeats at Debug) and each recovery; nil discards them.
	Logger *slog.Logger
	// Registerer receives the stages' metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock of the health records (default time.Now).
	Now func() time.Time
}

// Group supervises stages.
type Group struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	stages map[string]*stage

	errors   *prometheus.CounterVec
	restarts *prometheus.CounterVec
	up       *prometheus.GaugeVec
	success  *prometheus.GaugeVec
	set      *metricset.Set
}

// stage is one supervised stage's health, guarded by Group.mu.
type stage struct {
	h       Health
	lastMsg string // the last error logged at Error level, to log repeats at Debug
}

// DefaultOptions are the documented defaults: the one place they are written
// (internal/config's stages.* defaults are these).
func DefaultOptions() Options { return Options{RestartMin: time.Second, RestartMax: time.Minute} }

// New returns a Group whose stages run under ctx (and stop with it, or with Stop).
func New(ctx context.Context, name string, o *Options) *Group {
	var opts Options
	if o != nil {
		opts = *o
	}
	d := DefaultOptions()
	if opts.RestartMin <= 0 {
		opts.RestartMin = d.RestartMin
	}
	if opts.RestartMax < opts.RestartMin {
		opts.RestartMax = max(d.RestartMax, opts.RestartMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Group{opts: opts, log: opts.Logger.With("component", "supervise", "group", name), stages: map[string]*stage{},
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_stage_errors_total",
			Help: "Errors of a supervised stage: failed passes and failed runs.", ConstLabels: prometheus.Labels{"group": name}}, []string{"stage"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_stage_restarts_total",
			Help: "Restarts of a supervised stage after it failed.", ConstLabels: prometheus.Labels{"group": name}}, []string{"stage"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hearth_stage_up",
			Help: "1 while a stage runs and its last pass succeeded, 0 while it fails or waits to be restarted.", ConstLabels: prometheus.Labels{"group": name}}, []string{"stage"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hearth_stage_last_success_timestamp_seconds",
			Help: "Unix time of a stage's last successful pass.", ConstLabels: prometheus.Labels{"group": name}}, []string{"stage"}),
	}
	g.set = metricset.Must(opts.Registerer, g.errors, g.restarts, g.up, g.success)
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

// Reporter tells the group how a stage's passes go. Its methods may be called from
// any goroutine.
type Reporter struct {
	g    *Group
	name string
}

// OK records a successful pass.
func (r *Reporter) OK() { r.g.ok(r.name) }

// Fail records an error the stage survives (a pass that failed).
func (r *Reporter) Fail(err error) { r.g.fail(r.name, err, StateFailing) }

// Go runs fn as the stage name until the group stops. When fn returns before that —
// with an error, nil, or a panic — the failure is recorded and fn is started again
// after a backoff.
func (g *Group) Go(name string, fn func(ctx context.Context, r *Reporter) error) {
	r := g.register(name)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		wait := time.Duration(0)
		for {
			began := g.opts.Now()
			err := g.call(fn, r)
			if g.ctx.Err() != nil {
				break
			}
			if err == nil {
				err = errors.New("returned while it should still run")
			}
			if g.opts.Now().Sub(began) >= g.opts.RestartMax {
				wait = 0 // it ran well for a while: a fresh failure, not a loop
			}
			wait = min(max(2*wait, g.opts.RestartMin), g.opts.RestartMax)
			sleep := time.Duration(rand.Int64N(int64(wait))) + g.opts.RestartMin/2 // full jitter, never a busy loop
			g.fail(name, err, StateBackoff)
			g.setBackoff(name, sleep)
			t := time.NewTimer(sleep)
			select {
			case <-g.ctx.Done():
				t.Stop()
			case <-t.C:
			}
			if g.ctx.Err() != nil {
				break
			}
			g.restarted(name)
		}
		g.stopped(name)
	}()
}

// call runs fn, turning a panic into an error (with its stack in the log).
func (g *Group) call(fn func(context.Context, *Reporter) error, r *Reporter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("stage panicked", "stage", r.name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(g.ctx, r)
}

// Every calls step as the stage name every interval until the group stops. A step's
// error is recorded (Fail) and the next step runs at the next interval; a nil error
// is a success (OK). A panicking step is recorded as failed and the stage restarted.
//
// Steps fall on a grid shared by every stage in the process (nextStep): stages whose
// intervals divide one another (2s, 5s, 10s, 1m) step in the same wake-up. At a hub's
// rates a wake-up costs more than most steps — the Go runtime's scheduler and sysmon
// wake with it — so the agent's periodic stages, on tickers started a few
// microseconds apart, were woken separately for nothing. A step that overruns a grid
// instant is followed at once by the next step, as with a ticker.
func (g *Group) Every(name string, interval time.Duration, step func(ctx context.Context) error) {
	g.Go(name, func(ctx context.Context, r *Reporter) error {
		t := time.NewTimer(nextStep(time.Now(), interval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			t.Reset(nextStep(time.Now(), interval))
			if err := step(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.Fail(err)
				continue
			}
			r.OK()
		}
	})
}

// nextStep is the time from now to the next multiple of interval since the Unix
// epoch (by the wall clock): in (0, interval], the same instant for every stage
// whose interval divides another's.
func nextStep(now time.Time, interval time.Duration) time.Duration {
	if interval <= 0 {
		panic("supervise: non-positive interval for Every") // as time.NewTicker: the stage fails and is restarted
	}
	return now.Truncate(interval).Add(interval).Sub(now)
}

// Stop cancels every stage and waits for them to return.
func (g *Group) Stop() {
	g.cancel()
	g.wg.Wait()
}

// Unregister removes the group's metrics.
func (g *Group) Unregister() { g.set.Unregister() }

// Health returns every stage's health, by name.
func (g *Group) Health() []Health {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Health, 0, len(g.stages))
	for _, s := range g.stages {
		out = append(out, s.h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *Group) register(name string) *Reporter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.stages[name]; dup {
		panic("supervise: stage " + name + " started twice") // a programming error
	}
	g.stages[name] = &stage{h: Health{Name: name, State: StateRunning, Since: g.opts.Now()}}
	g.up.WithLabelValues(name).Set(1)
	g.errors.WithLabelValues(name)
	g.restarts.WithLabelValues(name)
	return &Reporter{g: g, name: name}
}

func (g *Group) ok(name string) {
	now := g.opts.Now()
	g.mu.Lock()
	s := g.stages[name]
	recovered := s.h.State == StateFailing
	if s.h.State != StateRunning {
		s.h.State, s.h.Since = StateRunning, now
	}
	s.h.LastSuccess, s.h.Failures = now, 0
	s.lastMsg = ""
	g.mu.Unlock()
	g.up.WithLabelValues(name).Set(1)
	g.success.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
	if recovered {
		g.log.Info("stage recovered", "stage", name)
	}
}

func (g *Group) fail(name string, err error, state string) {
	now := g.opts.Now()
	msg := err.Error()
	g.mu.Lock()
	s := g.stages[name]
	if s.h.State != state {
		s.h.State, s.h.Since = state, now
	}
	s.h.LastError, s.h.LastErrorAt = msg, now
	s.h.Errors++
	s.h.Failures++
	repeat := msg == s.lastMsg
	s.lastMsg = msg
	failures := s.h.Failures
	g.mu.Unlock()
	g.errors.WithLabelValues(name).Inc()
	g.up.WithLabelValues(name).Set(0)
	if repeat {
		g.log.Debug("stage failed again", "stage", name, "err", msg, "in_a_row", failures)
		return
	}
	g.log.Error("stage failed", "stage", name, "err", msg, "in_a_row", failures, "state", state)
}

func (g *Group) setBackoff(name string, d time.Duration) {
	g.mu.Lock()
	g.stages[name].h.Backoff = d
	g.mu.Unlock()
}

func (g *Group) restarted(name string) {
	now := g.opts.Now()
	g.mu.Lock()
	s := g.stages[name]
	s.h.State, s.h.Since, s.h.Backoff = StateRunning, now, 0
	s.h.Restarts++
	g.mu.Unlock()
	g.restarts.WithLabelValues(name).Inc()
	g.log.Info("stage restarted", "stage", name)
}

func (g *Group) stopped(name string) {
	now := g.opts.Now()
	g.mu.Lock()
	s := g.stages[name]
	s.h.State, s.h.Since, s.h.Backoff = StateStopped, now, 0
	g.mu.Unlock()
	g.up.WithLabelValues(name).Set(0)
}
