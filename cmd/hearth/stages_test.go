package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
