package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: run takes no arguments, got %q", errUsage, fs.Args())
	}
	f := config.DefaultFile()
	if *cfgPath != "" {
		var err error
		if f, err = config.Read(*cfgPath); err != nil {
			return err
		}
	}
	// What `hearth config check` reports, run refuses: the same checks (check.go).
	checkSystem(f)
	if err := f.Err(); err != nil {
		return err
	}
	log := newLogger(f.Config.Log, stderr)
	for _, w := range f.Warnings {
		log.Warn("configuration", "warning", w.Error())
	}
	a, err := newAgent(f.Config, log, stdout)
	if err != nil {
		return err
	}
	return a.run(ctx)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// agent is the whole graph of one running hearth.
type agent struct {
	cfg     config.Config
	log     *slog.Logger
	out     io.Writer
	reg     *prometheus.Registry
	started time.Time

	brokerLn net.Listener
	tlsLn    net.Listener // broker.tls_listen, when set
	mq       *mqttWiring  // decoders, discovery, registry (mqtt.go)
	adminLn  net.Listener
	st       *store.Store
	in       *ingest.Ingest
	creds    *broker.Credentials
	br       *broker.Broker
	roll     *rollup.Consumer
	eng      *tagging.Engine
	sum      *summary.Builder
	ob       *outbox.Outbox
	sink     *transport.File
	hh       *sim.Household
	sources  []device.Source // serial ports, external broker, hub sensors
	hub      *periph.Source  // the hub sensors, when configured (hubsensors.go)

	rulesDigest [32]byte // sha256 of the rules file as loaded
	simPass     map[string]string
	simIDs      map[string]bool // the simulated household's device ids (set before run, read-only after)
	adminSrv    *http.Server
	tokenFile   string // admin.token_file as resolved: the admin API's bearer token

	simMu       sync.Mutex
	simReadings int64
	simBytes    int64
}

// newAgent binds the listeners, opens the store and builds every component. On any
// error it undoes what it did (closes listeners, removes a data directory it made) so
// no half-created state is left.
func newAgent(cfg config.Config, log *slog.Logger, out io.Writer) (_ *agent, err error) {
	a := &agent{cfg: cfg, log: log, out: out, reg: prometheus.NewRegistry(), started: time.Now(), simIDs: map[string]bool{}}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	// 1. Listeners first: a busy port is the commonest failure, and it must not leave
	// a store or data directory behind.
	if a.adminLn, err = listen("admin.listen", cfg.Admin.Listen); err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.adminLn.Close() })
	if cfg.Broker.Enabled {
		if err = a.listenBroker(); err != nil {
			return nil, err
		}
		undo = append(undo, a.closeBrokerListeners)
	}
	// 2. Tag rules, before anything is written.
	rules, digest, err := readRules(cfg.Tagging.RulesFile)
	if err != nil {
		return nil, err
	}
	a.rulesDigest = digest
	// 3. The data directory must be writable.
	made, err := prepareDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if made {
		undo = append(undo, func() { os.RemoveAll(cfg.DataDir) })
	}
	// 4. The store.
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.st, err = store.Open(filepath.Join(cfg.DataDir, cfg.Store.File), &store.Options{
		MaxBatch: cfg.Store.MaxBatch, MaxDelay: cfg.Store.MaxDelay.D(), CommitPace: cfg.Store.CommitPace.D(), QueueLen: cfg.Store.QueueLen,
		QuotaBytes: cfg.Store.QuotaBytes, MaxAge: cfg.Store.MaxAge.D(), Logger: log, Registerer: a.reg,
		Protect: []string{rollup.CursorName}})
	if err != nil {
		return nil, fmt.Errorf("store.file: %w", err)
	}
	undo = append(undo, func() { a.st.Close() })
	if a.st.Recovered != "" {
		log.Error("store was corrupt and was moved aside; started a fresh one", "component", "store", "moved_to", a.st.Recovered)
		_ = a.st.Update(func(tx *store.Tx) error {
			return tx.Audit("store_corrupt", map[string]string{"moved_to": a.st.Recovered, "at": time.Now().UTC().Format(time.RFC3339)})
		})
	}
	// 4b. The admin token, after the store's lock is held: two agents starting on one
	// fresh data_dir cannot both write it.
	a.tokenFile = cfg.AdminTokenFile()
	token, created, err := admin.LoadOrCreateToken(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %w", err)
	}
	if created {
		undo = append(undo, func() { os.Remove(a.tokenFile) })
		log.Info("admin token made", "component", "admin", "file", a.tokenFile)
	}
	loc := cfg.Location()
	consent := privacy.Consent{Usage: cfg.Consent.Usage, Sensitive: cfg.Consent.Sensitive}
	// 5. The pipeline, sinks first.
	a.in = ingest.New(a.st, &ingest.Options{MaxSkew: cfg.Ingest.MaxClockSkew.D(), Logger: log, Registerer: a.reg})
	a.roll = rollup.NewConsumer(a.st, &rollup.ConsumerOptions{Location: loc, Logger: log, Registerer: a.reg})
	a.eng = tagging.New(a.st, rules, &tagging.Options{Location: loc, Consent: consent.Allows, Logger: log, Registerer: a.reg,
		PeakHours: [2]int{cfg.Tagging.PeakHours[0], cfg.Tagging.PeakHours[1]}})
	a.sum = summary.NewBuilder(a.st, &summary.Options{Location: loc, Consent: consent, Registerer: a.reg, Simulated: a.simulated,
		CloseGrace: cfg.Sync.DayCloseGrace.D()})
	if a.sink, err = transport.NewFile(filepath.Join(cfg.DataDir, cfg.Sync.Dir)); err != nil {
		return nil, fmt.Errorf("sync.dir: %w", err)
	}
	a.ob = outbox.New(a.st, a.sink, &outbox.Options{BatchCount: cfg.Sync.BatchCount, BatchBytes: cfg.Sync.BatchBytes,
		BatchAge: cfg.Sync.BatchAge.D(), Logger: log, Registerer: a.reg})
	// 6. Sources.
	a.creds = broker.NewCredentials()
	if cfg.Sim.Enabled {
		// A second run continues the household's story where the store's data ends
		// (from the next local midnight), under a new boot id: starting again 28 days
		// back would make every reading older than what the rollups have seen, and
		// reusing the boot id would make them all look like retransmissions.
		start := time.Now().Add(-cfg.Sim.History.D())
		var clock time.Time
		_ = a.st.View(func(tx *store.Tx) error { clock, _ = tagging.DataClock(tx); return nil })
		if next := clock.In(loc).AddDate(0, 0, 1); !clock.IsZero() && next.After(start) {
			start = next
		}
		a.hh, err = sim.New(simOptions(cfg, start))
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		a.simPass = map[string]string{}
		for _, ap := range a.hh.Appliances() {
			a.simIDs[ap.ID] = true
			_, pw, err := a.creds.Add(ap.ID, ap.Kind) // ephemeral: lives as long as this process
			if err != nil {
				return nil, fmt.Errorf("sim: %w", err)
			}
			a.simPass[ap.ID] = pw
		}
	}
	if cfg.Broker.Enabled {
		if err = a.buildBroker(); err != nil {
			return nil, err
		}
	}
	if a.sources, err = a.extraSources(); err != nil {
		return nil, err
	}
	a.adminSrv = admin.NewServer(admin.Handler(admin.Sources{
		Gatherer: a.reg, Ready: a.ready, Pprof: cfg.Admin.Pprof, Status: func() any { return a.status() },
		Devices: func() any { return a.st.Devices() },
		Tags: func() []any {
			ts := a.eng.Tags()
			out := make([]any, len(ts))
			for i := range ts {
				out[i] = ts[i]
			}
			return out
		},
		TagName:     func(v any) string { return v.(tagging.Tag).Name },
		Routes:      a.registryRoutes(),
		Token:       token,
		Registerer:  a.reg,
		Readings:    a.readings,
		ReadingsMax: cfg.Admin.ReadingsMax,
	}))
	return a, nil
}

func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s: %s is already in use (is another hearth or MQTT broker running?)", key, addr)
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return ln, nil
}

// prepareDataDir creates dir if needed and checks it is writable. made reports
// whether it created it.
func prepareDataDir(dir string) (made bool, err error) {
	if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
		made = true
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false, fmt.Errorf("data_dir: cannot create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".hearth-write-check-*")
	if err != nil {
		if made {
			os.RemoveAll(dir)
		}
		return false, fmt.Errorf("data_dir: %s is not writable: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return made, nil
}

func loadRules(path string) (*tagging.RuleSet, error) {
	rs, _, err := readRules(path)
	return rs, err
}

// readRules parses the rules file (the built-in rules when path is empty) and returns
// the sha256 of the bytes it parsed, which watchRules compares to see a change.
func readRules(path string) (*tagging.RuleSet, [32]byte, error) {
	if path == "" {
		rs, err := tagging.ParseRules(configs.Tags, "tags.yaml (built in)")
		return rs, [32]byte{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [32]byte{}, keyError{"tagging.rules_file", err}
	}
	rs, err := tagging.ParseRules(b, path)
	if err != nil {
		err = keyError{"tagging.rules_file", err}
	}
	return rs, sha256.Sum256(b), err
}

func (a *agent) ready() error {
	if err := a.st.Failed(); err != nil {
		return fmt.Errorf("store intake stopped: %v", err)
	}
	if a.mq != nil && a.mq.ext != nil {
		// Not connected to the household's broker: nothing it carries comes in.
		return a.mq.ext.Ready()
	}
	return nil
}

// run starts the components and blocks until ctx is cancelled, then shuts down in
// order — stop sources, drain, commit, close the store — within shutdown_timeout.
func (a *agent) run(ctx context.Context) error {
	log := a.log
	pipeCtx, stopPipe := context.WithCancel(context.Background())
	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopPipe()
	defer stopSrc()
	var pipe, srcs sync.WaitGroup
	errc := make(chan error, 8)

	// Sinks first: the pipeline stages downstream of the store.
	pipe.Add(5)
	go func() { defer pipe.Done(); _ = a.roll.Run(pipeCtx, a.cfg.Rollup.Interval.D()) }()
	go func() { defer pipe.Done(); _ = a.eng.Run(pipeCtx, a.cfg.Tagging.Interval.D()) }()
	go func() { defer pipe.Done(); a.syncLoop(pipeCtx) }()
	go func() { defer pipe.Done(); a.st.Maintain(pipeCtx, time.Minute) }()
	go func() { defer pipe.Done(); a.watchRules(pipeCtx) }()
	go func() {
		if err := a.adminSrv.Serve(a.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin: %w", err)
		}
	}()
	// Then sources.
	if a.br != nil {
		srcs.Add(1)
		go func() {
			defer srcs.Done()
			if err := a.br.Serve(a.brokerListeners()...); err != nil {
				errc <- err
			}
		}()
	}
	for _, src := range a.sources {
		srcs.Add(1)
		go func() {
			defer srcs.Done()
			if err := src.Run(srcCtx, a.in); err != nil {
				errc <- fmt.Errorf("%s: %w", src.Name(), err)
			}
		}()
	}
	if a.hh != nil {
		srcs.Add(1)
		go func() {
			defer srcs.Done()
			err := sim.Publish(srcCtx, a.hh, sim.PublishOptions{Broker: "tcp://" + a.brokerLn.Addr().String(),
				Credentials: a.simPass, Speed: a.cfg.Sim.Speed, Logger: log,
				OnPublished: func(rs []device.Reading, n int) {
					a.simMu.Lock()
					a.simReadings += int64(len(rs))
					a.simBytes += int64(n)
					a.simMu.Unlock()
				}})
			if err != nil {
				errc <- fmt.Errorf("sim: %w", err)
			}
		}()
	}
	var rep sync.WaitGroup
	if a.cfg.Report.Interval > 0 {
		rep.Add(1)
		go func() { defer rep.Done(); a.reportLoop(srcCtx, a.cfg.Report.Interval.D()) }()
	}
	// systemd (Type=notify): ready now that every listener serves; pinged while alive.
	sd := newNotifier(os.Getenv)
	if every, err := watchdogInterval(os.Getenv); err != nil {
		log.Warn("systemd watchdog off", "err", err)
	} else if every > 0 {
		rep.Add(1)
		go func() { defer rep.Done(); watchdog(srcCtx, sd, every, a.alive, log) }()
	}
	if err := sd.notify("READY=1\nSTATUS=running"); err != nil {
		log.Warn("could not tell systemd hearth is ready", "err", err)
	}
	log.Info("hearth running", "version", version, "admin", a.adminLn.Addr().String(), "broker", addrOf(a.brokerLn),
		"admin_token_file", a.tokenFile, "store", a.st.Path(), "install_id", a.st.InstallID(), "simulated_household", a.hh != nil)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("component failed: shutting down", "err", runErr)
	}
	_ = sd.notify("STOPPING=1")
	done := make(chan error, 1)
	go func() { done <- a.shutdown(stopSrc, &srcs, stopPipe, &pipe, &rep) }()
	select {
	case err := <-done:
		return errors.Join(runErr, err)
	case <-time.After(a.cfg.ShutdownTimeout.D()):
		return errors.Join(runErr, fmt.Errorf("shutdown took longer than shutdown_timeout (%s): exiting anyway; readings not yet acknowledged will be sent again by their devices", a.cfg.ShutdownTimeout.D()))
	}
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func (a *agent) shutdown(stopSrc func(), srcs *sync.WaitGroup, stopPipe func(), pipe, rep *sync.WaitGroup) error {
	// 1. Stop sources: no new readings.
	stopSrc()
	if a.br != nil {
		_ = a.br.Close()
	}
	srcs.Wait()
	rep.Wait()
	// 2. Drain: stages catch up with everything committed.
	stopPipe()
	pipe.Wait()
	var errs []error
	if _, err := a.roll.CatchUp(); err != nil {
		errs = append(errs, fmt.Errorf("rollup: %w", err))
	}
	if _, err := a.eng.Evaluate(time.Time{}); err != nil {
		errs = append(errs, fmt.Errorf("tagging: %w", err))
	}
	if _, err := a.sum.Step(); err != nil {
		errs = append(errs, fmt.Errorf("summary: %w", err))
	}
	if _, err := a.ob.Flush(context.Background()); err != nil {
		a.log.Warn("outbox not flushed: kept for the next start", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = a.adminSrv.Shutdown(ctx)
	cancel()
	// 3. Commit and close the store.
	if err := a.st.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	a.log.Info("stopped", "uptime", time.Since(a.started).Round(time.Second))
	return errors.Join(errs...)
}

func (a *agent) syncLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.Sync.Interval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.sum.Step(); err != nil {
				a.log.Error("summary failed", "component", "summary", "err", err)
			}
			if _, err := a.ob.Step(ctx, time.Now(), false); err != nil {
				a.log.Debug("outbox step", "err", err)
			}
		}
	}
}

// watchRules reloads the rules file on SIGHUP or when it changes; a bad file keeps
// the rules in use and logs every error with its line.
func (a *agent) watchRules(ctx context.Context) {
	path := a.cfg.Tagging.RulesFile
	hup := make(chan os.Signal, 1)
	notifyHUP(hup)
	defer stopNotify(hup)
	// The file's content, not its mtime, says whether it changed: an edit within the
	// mtime's granularity, or between the start-up load and this loop, is still seen.
	last := a.rulesDigest
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		reload := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload = true
		case <-t.C:
			if path == "" {
				continue
			}
			if b, err := os.ReadFile(path); err == nil && sha256.Sum256(b) != last {
				reload = true
			}
		}
		if !reload || path == "" {
			continue
		}
		rs, digest, err := readRules(path)
		if digest != ([32]byte{}) {
			last = digest // a bad file is reported once, not every second
		}
		if err != nil {
			a.log.Error("tag rules not reloaded: keeping the rules in use", "component", "tagging", "file", path,
				"errors", strings.ReplaceAll(err.Error(), "\n", "; "))
			continue
		}
		a.eng.SetRules(rs)
		a.log.Info("tag rules reloaded", "component", "tagging", "file", path, "rules", len(rs.Rules))
	}
}

// simulated reports whether id is a device of the simulated household this agent
// runs: those carry no personal data, so their summaries need no consent. It is the
// set the agent built, not a name pattern a real device could imitate.
func (a *agent) simulated(id string) bool { return a.simIDs[id] }
