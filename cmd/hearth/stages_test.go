package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/internal/supervise"
)

// A pipeline stage that fails is shown — /readyz turns 503 naming it, /v1/status and
// `hearth status` give its error, errors and restarts — and restarted with backoff;
// once it runs again the agent is ready again. The agent itself never stops.
func TestFailingStageShownAndRestarted(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stages.RestartMin = config.Duration(5 * time.Millisecond)
	cfg.Stages.RestartMax = config.Duration(20 * time.Millisecond)
	a, err := newAgent(cfg, testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	var healed atomic.Bool
	a.testStages = func(p *supervise.Group) {
		p.Go("faulty", func(ctx context.Context, r *supervise.Reporter) error {
			runs.Add(1)
			if !healed.Load() {
				return errors.New("cannot read record 42")
			}
			r.OK()
			<-ctx.Done()
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.run(ctx) }()
	admin := "http://" + a.adminLn.Addr().String()
	readyz := func() (int, string) {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/readyz to name the failing stage", 10*time.Second, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "faulty") && strings.Contains(body, "cannot read record 42")
	})
	waitFor(t, "three restarts", 10*time.Second, func() bool { return runs.Load() >= 4 })
	var st Status
	getJSON(t, admin+"/v1/status", &st)
	var h supervise.Health
	for _, x := range st.Stages["pipeline"] {
		if x.Name == "faulty" {
			h = x
		}
	}
	if h.Restarts < 3 || h.Errors < 3 || h.LastError != "cannot read record 42" {
		t.Fatalf("/v1/status stage: %+v", h)
	}
	out, err := hearthCLI(t, "status", "--addr", a.adminLn.Addr().String())
	if err != nil || !strings.Contains(out, "faulty") || !strings.Contains(out, "cannot read record 42") || !strings.Contains(out, "NOT READY") {
		t.Fatalf("hearth status: %v\n%s", err, out)
	}
	if v, err := metricset.Value(a.reg, "hearth_stage_restarts_total", "stage", "faulty"); err != nil || v < 3 {
		t.Fatalf("hearth_stage_restarts_total{stage=faulty} = %v, %v", v, err)
	}
	healed.Store(true)
	waitFor(t, "ready again once the stage runs", 10*time.Second, func() bool { code, _ := readyz(); return code == http.StatusOK })
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

// The terminal report prints the whole tag table once, then only a line of counts
// and the tags that changed since they were printed; SIGUSR1 prints the table again.
func TestReportPrintsWhatChanged(t *testing.T) {
	cfg := testConfig(t)
	var out bytes.Buffer
	a, err := newAgent(cfg, testLogger(t), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAgent(t, a)
	// A fortnight of a fridge's door, so that the rules have something to score.
	var rs []device.Reading
	start := time.Now().Add(-14 * 24 * time.Hour)
	for i := range 14 * 6 {
		at := start.Add(time.Duration(i) * 4 * time.Hour)
		for j, v := range []float64{1, 0} {
			rs = append(rs, device.Reading{Device: "f1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: v,
				Boot: 1, Seq: uint64(2*i + j + 1), DeviceTime: at.Add(time.Duration(j) * 40 * time.Second), HubTime: at.Add(time.Duration(j) * 40 * time.Second)})
		}
	}
	done := make(chan error, 1)
	a.st.Submit(rs, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := a.roll.CatchUp(); err != nil {
		t.Fatal(err)
	}
	tags, err := a.eng.Evaluate(time.Time{})
	if err != nil || len(tags) < 5 {
		t.Fatalf("%d tags, %v", len(tags), err)
	}
	rep := a.newReporter()
	defer rep.stop()
	lines := func() []string {
		_ = rep.step(context.Background())
		s := strings.TrimSpace(out.String())
		out.Reset()
		return strings.Split(s, "\n")
	}
	first := lines()
	if len(first) < len(tags)+2 || !strings.Contains(strings.Join(first, "\n"), tags[len(tags)-1].Name) {
		t.Fatalf("first report: want the header and the %d tags:\n%s", len(tags), strings.Join(first, "\n"))
	}
	if again := lines(); len(again) != 1 || !strings.HasPrefix(again[0], "── hearth") {
		t.Fatalf("nothing changed: want only the line of counts, got:\n%s", strings.Join(again, "\n"))
	}
	// One tag as if it had moved since it was printed.
	r := tags[2]
	moved := r
	moved.Score += 0.3
	rep.printed[r.Name] = moved
	changed := lines()
	if len(changed) != 3 || !strings.Contains(changed[2], r.Name) { // counts, table header, the tag
		t.Fatalf("one tag changed: want it alone under the counts, got:\n%s", strings.Join(changed, "\n"))
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGUSR1 to arrive", 5*time.Second, func() bool { return len(rep.usr1) > 0 })
	if full := lines(); len(full) < len(tags)+2 {
		t.Fatalf("after SIGUSR1: want the whole table, got:\n%s", strings.Join(full, "\n"))
	}
}
