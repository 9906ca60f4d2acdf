package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/internal/supervise"
)

// The agent's stages, in three supervised groups stopped in order at shutdown:
// sources (no new readings), then the pipeline (which is then drained by hand, in
// data-flow order), then the admin API (it answers until the end). Each stage is
// restarted with backoff when it fails, and its health is in /readyz, /metrics,
// /v1/status and `hearth status`.
type stages struct {
	sources, pipeline, admin *supervise.Group
}

func (a *agent) supervisorOptions() *supervise.Options {
	return &supervise.Options{RestartMin: a.cfg.Stages.RestartMin.D(), RestartMax: a.cfg.Stages.RestartMax.D(),
		Logger: a.log, Registerer: a.reg}
}

// startStages starts every stage: the admin API and the pipeline first, the sources
// last, so that nothing reads a device before everything downstream runs.
func (a *agent) startStages() {
	o := a.supervisorOptions()
	a.stages = stages{
		admin:    supervise.New(context.Background(), "admin", o),
		pipeline: supervise.New(context.Background(), "pipeline", o),
		sources:  supervise.New(context.Background(), "sources", o),
	}
	a.stages.admin.Go("admin", a.serveAdmin)
	p := a.stages.pipeline
	p.Every("rollup", a.cfg.Rollup.Interval.D(), func(context.Context) error { _, err := a.roll.CatchUp(); return err })
	// Tags are evaluated when the store, the rules or consent changed since the last
	// evaluation (tagging.Engine.Refresh): the same tags as evaluating every interval.
	p.Every("tagging", a.cfg.Tagging.Interval.D(), func(context.Context) error { _, err := a.eng.Refresh(); return err })
	p.Every("summary", a.cfg.Sync.Interval.D(), a.summaryStep) // sync.go
	p.Go("delivery", func(ctx context.Context, r *supervise.Reporter) error {
		return a.dl.RunReporting(ctx, func(err error) {
			if err != nil {
				r.Fail(err)
			} else {
				r.OK()
			}
		})
	})
	p.Every("retention", time.Minute, func(context.Context) error { return a.st.Maintain(time.Now()) })
	// Looks when the store was used (at most every 250ms, in the same wake-up),
	// releases once the resident set has grown (release.go).
	rel := newPageReleaser(a.st.ReleaseMapped)
	p.Go("release-pages", func(ctx context.Context, r *supervise.Reporter) error { return rel.run(ctx, a.st.Touched(), r) })
	p.Every("audit-retention", time.Minute, a.expireAudit) // privacy.go
	if a.cfg.Tagging.RulesFile != "" {
		p.Every("rules", time.Second, a.rulesStep())
	} else {
		// The built-in rules: nothing to poll or reload. rulesStep still takes SIGHUP
		// (which would otherwise end the process); the stage only waits.
		a.rulesStep()
		p.Go("rules", func(ctx context.Context, r *supervise.Reporter) error { r.OK(); <-ctx.Done(); return nil })
	}

	s := a.stages.sources
	if a.br != nil {
		s.Go("broker", func(ctx context.Context, r *supervise.Reporter) error {
			if err := a.br.Serve(a.brokerListeners()...); err != nil {
				return err
			}
			r.OK()
			<-ctx.Done()
			return a.br.Close()
		})
	}
	for _, src := range a.sources {
		s.Go(src.Name(), func(ctx context.Context, _ *supervise.Reporter) error { return src.Run(ctx, a.in) })
	}
	if a.hh != nil {
		s.Go("sim", func(ctx context.Context, _ *supervise.Reporter) error {
			err := sim.Publish(ctx, a.hh, sim.PublishOptions{Broker: "tcp://" + a.brokerLn.Addr().String(),
				Credentials: a.simPass, Speed: a.cfg.Sim.Speed, Logger: a.log, Skip: a.simSkip,
				OnPublished: func(rs []device.Reading, n int) {
					a.simMu.Lock()
					a.simReadings += int64(len(rs))
					a.simBytes += int64(n)
					for i := range rs {
						if rs[i].DeviceTime.After(a.simAt) {
							a.simAt = rs[i].DeviceTime
						}
					}
					a.simMu.Unlock()
				}})
			if err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			return nil
		})
	}
	if a.cfg.Report.Interval > 0 {
		r := a.newReporter()
		a.stopReport = r.stop
		s.Every("report", a.cfg.Report.Interval.D(), r.step)
	}
	if a.testStages != nil {
		a.testStages(a.stages.pipeline)
	}
}

// simClock is the time of the newest reading the simulated household published: its
// clock, which the data clock stops following once a real device publishes.
func (a *agent) simClock() time.Time {
	a.simMu.Lock()
	defer a.simMu.Unlock()
	return a.simAt
}

// health is every stage's health, by group.
func (a *agent) health() map[string][]supervise.Health {
	if a.stages.sources == nil {
		return nil
	}
	return map[string][]supervise.Health{"sources": a.stages.sources.Health(), "pipeline": a.stages.pipeline.Health(),
		"admin": a.stages.admin.Health()}
}

// notGating are the stages whose failure is shown but does not make the agent
// unready: it still takes, keeps and processes readings while the cloud cannot be
// reached (delivery), a bad edit of the rules file keeps the rules in use (rules), and
// neither the terminal report nor releasing mapped pages touch the data.
var notGating = map[string]bool{"delivery": true, "rules": true, "report": true, "release-pages": true}

// unhealthy says which stages make the agent unready: waiting to be restarted, or
// failing unready_after passes in a row.
func (a *agent) unhealthy() []string {
	var bad []string
	for _, hs := range a.health() {
		for _, h := range hs {
			if !notGating[h.Name] && !h.Healthy(a.cfg.Stages.UnreadyAfter) {
				bad = append(bad, fmt.Sprintf("%s %s (%d× in a row: %s)", h.Name, h.State, h.Failures, h.LastError))
			}
		}
	}
	return bad
}

// serveAdmin serves the admin API until ctx ends, then shuts it down.
func (a *agent) serveAdmin(ctx context.Context, r *supervise.Reporter) error {
	errc := make(chan error, 1)
	go func() { errc <- a.adminSrv.Serve(a.adminLn) }()
	r.OK()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.adminSrv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// rulesStep reloads the rules file on SIGHUP or when it changed. A bad file keeps
// the rules in use and fails the step (its every error with its line is shown).
func (a *agent) rulesStep() func(context.Context) error {
	path := a.cfg.Tagging.RulesFile
	hup := make(chan os.Signal, 1)
	notifyHUP(hup)
	a.stopHUP = func() { stopNotify(hup) }
	// The file's content, not its mtime, says whether it changed: an edit within the
	// mtime's granularity, or between the start-up load and the first step, is seen.
	last := a.rulesDigest
	var lastErr error
	return func(context.Context) error {
		reload := false
		select {
		case <-hup:
			reload = true
		default:
		}
		if path == "" {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && sha256.Sum256(b) != last {
			reload = true
		}
		if !reload {
			return lastErr // a bad file stays reported until it is fixed
		}
		rs, digest, err := readRules(path)
		if digest != ([32]byte{}) {
			last = digest // a bad file is read again only when it changes
		}
		if err != nil {
			lastErr = fmt.Errorf("tag rules not reloaded, keeping the rules in use: %s: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
			return lastErr
		}
		lastErr = nil
		a.eng.SetRules(rs)
		a.log.Info("tag rules reloaded", "component", "tagging", "file", path, "rules", len(rs.Rules))
		return nil
	}
}
