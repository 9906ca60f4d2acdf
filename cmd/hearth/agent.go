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
	"sort"
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
	"github.com/hearth-iot/hearth/edge/pipeline"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/procs"
	"github.com/hearth-iot/hearth/internal/supervise"
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
	return runAgent(ctx, f.Config, log, stdout, nil)
}

// runAgent runs the agent until ctx ends. An agent that asks to restart in place
// (an erasure: privacy.go) is shut down in order and built again on the same
// configuration, its listeners on the addresses they had. started, when not nil, is
// told each agent it built (tests).
func runAgent(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer, started func(*agent)) error {
	for {
		a, err := newAgent(cfg, log, stdout)
		if err != nil {
			return err
		}
		if started != nil {
			started(a)
		}
		err = a.run(ctx)
		if !errors.Is(err, errRestart) || ctx.Err() != nil {
			if errors.Is(err, errRestart) {
				err = nil
			}
			return err
		}
		cfg = a.sameAddresses()
	}
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
	gov     *procs.Governor // GOMAXPROCS from the rate of readings (nil: left to the runtime)
	cfg     config.Config
	log     *slog.Logger
	out     io.Writer
	reg     *prometheus.Registry
	started time.Time

	brokerLn net.Listener
	tlsLn    net.Listener // broker.tls_listen, when set
	mq       *mqttWiring  // decoders, discovery, registry (mqtt.go)
	adminLn  net.Listener
	pipe     *pipeline.Pipeline // the store and the stages over it, as built for replay too
	st       *store.Store
	in       *ingest.Ingest
	creds    *broker.Credentials
	br       *broker.Broker
	roll     *rollupstage.Consumer
	eng      *tagging.Engine
	sum      *summary.Builder
	tr       transport.Transport
	dl       *outbox.Delivery // sync.go
	sink     *transport.File  // tr when sync.transport is file
	hh       *sim.Household
	sources  []device.Source // serial ports, external broker, hub sensors
	hub      *periph.Source  // the hub sensors, when configured (hubsensors.go)

	rulesDigest [32]byte // sha256 of the rules file as loaded
	simPass     map[string]string
	simIDs      map[string]bool // the simulated household's device ids (set before run, read-only after)
	adminSrv    *http.Server
	stages      stages                          // the supervised stages (stages.go), made by run
	stopHUP     func()                          // stops the rules stage's SIGHUP notification
	testStages  func(pipeline *supervise.Group) // tests add stages of their own (stages.go)
	tokenFile   string                          // admin.token_file as resolved: the admin API's bearer token

	simMu       sync.Mutex
	simReadings int64
	simBytes    int64
	simAt       time.Time // the newest reading the simulated household published
	stopReport  func()    // stops the report's SIGUSR1 notification

	// The household's rights (privacy.go).
	openPipe func() (*pipeline.Pipeline, error) // opens the store and the stages over it
	key      []byte                             // the pseudonym key (privacy.key_file)
	ledger   *privacy.Ledger                    // consent in force
	simSkip  map[string]bool                    // simulated appliances the household had forgotten
	restart  chan struct{}                      // a request to restart in place (an erasure waits for it)
}

// newAgent binds the listeners, opens the store and builds every component. On any
// error it undoes what it did (closes listeners, removes a data directory it made) so
// no half-created state is left.
func newAgent(cfg config.Config, log *slog.Logger, out io.Writer) (_ *agent, err error) {
	a := &agent{cfg: cfg, log: log, out: out, reg: prometheus.NewRegistry(), started: time.Now(), simIDs: map[string]bool{},
		simSkip: map[string]bool{}, restart: make(chan struct{}, 1)}
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
	// 4. The edge pipeline (ingest → store → rollup → tagging), built as replay and
	// eval build it.
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	loc := cfg.Location()
	consent := initialConsent(cfg)
	// One CPU at household rates, every CPU in a burst (cpu.burst_rate), following the
	// rate the store commits.
	a.gov = procs.New(procs.Options{BurstRate: cfg.CPU.BurstRate, Hold: procs.DefaultOptions().Hold})
	undo = append(undo, a.gov.Close)
	a.openPipe = func() (*pipeline.Pipeline, error) {
		return pipeline.Open(filepath.Join(cfg.DataDir, cfg.Store.File), pipeline.Options{
			Location: loc, Rules: rules, Logger: log, Registerer: a.reg,
			Store: store.Options{MaxBatch: cfg.Store.MaxBatch, MaxDelay: cfg.Store.MaxDelay.D(), CommitPace: cfg.Store.CommitPace.D(), FlashBudget: cfg.Store.FlashBudget,
				QueueLen: cfg.Store.QueueLen, QuotaBytes: cfg.Store.QuotaBytes, MaxAge: cfg.Store.MaxAge.D(), OnCommit: a.gov.Observe},
			Ingest:  ingest.Options{MaxSkew: cfg.Ingest.MaxClockSkew.D()},
			Tagging: tagging.Options{Consent: a.mayCompute, PeakHours: [2]int{cfg.Tagging.PeakHours[0], cfg.Tagging.PeakHours[1]}},
		})
	}
	a.pipe, err = a.openPipe()
	if err != nil {
		return nil, fmt.Errorf("store.file: %w", err)
	}
	undo = append(undo, func() { a.pipe.Close() })
	a.st, a.in, a.roll, a.eng = a.pipe.Store, a.pipe.Ingest, a.pipe.Rollup, a.pipe.Tags
	if a.st.Recovered != "" { // the store logged, audited and counted it, with what it salvaged
		log.Error("store was damaged: moved aside, and what was readable salvaged into a new one", "component", "store",
			"moved_to", a.st.Recovered, "recovered_records", a.st.Salvage().Recovered())
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
	// 4c. The household's rights (privacy.go): the pseudonym key, erasures asked for
	// before this start, the consent in force.
	if err = a.openPrivacy(consent); err != nil {
		return nil, err
	}
	// 5. Sync, downstream of the pipeline.
	if err = a.buildSync(loc); err != nil { // sync.go
		return nil, err
	}
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
			if a.wasForgotten(ap.ID) {
				a.simSkip[ap.ID] = true // the household had hearth forget it: it does not come back
				continue
			}
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
		Gatherer: a.reg, Ready: a.ready, Degraded: a.degraded, Pprof: cfg.Admin.Pprof, Status: func() any { return a.status() },
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
		Routes:      a.protectedRoutes(),
		OpenRoutes:  a.openRoutes(),
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

// ready says why the agent should not be sent work, or nil: intake stopped by a
// write failure, a disk without the room the store's next commits need (a restart
// on a still-full disk opens fine, and would fail at its first commit), a stage
// failing, or an external broker not connected.
func (a *agent) ready() error {
	if err := a.st.Failed(); err != nil {
		return fmt.Errorf("store intake stopped: %v", err)
	}
	if err := a.st.Space(); err != nil {
		return err
	}
	if bad := a.unhealthy(); len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("stages failing: %s", strings.Join(bad, "; "))
	}
	if a.mq != nil && a.mq.ext != nil {
		// Not connected to the household's broker: nothing it carries comes in.
		return a.mq.ext.Ready()
	}
	return nil
}

// run starts the stages and blocks until ctx is cancelled, then shuts down in order —
// stop sources, drain, commit, close the store — within shutdown_timeout. A stage
// that fails is restarted with backoff (stages.go); it never stops the agent.
func (a *agent) run(ctx context.Context) error {
	log := a.log
	a.startStages()
	// systemd (Type=notify): ready now that every listener serves; pinged while alive.
	sd := newNotifier(os.Getenv)
	if every, err := watchdogInterval(os.Getenv); err != nil {
		log.Warn("systemd watchdog off", "err", err)
	} else if every > 0 {
		a.stages.admin.Every("watchdog", every/2, watchdogStep(sd, every/4, a.alive))
	}
	if err := sd.notify("READY=1\nSTATUS=running"); err != nil {
		log.Warn("could not tell systemd hearth is ready", "err", err)
	}
	log.Info("hearth running", "version", version, "admin", a.adminLn.Addr().String(), "broker", addrOf(a.brokerLn),
		"admin_token_file", a.tokenFile, "store", a.st.Path(), "install_id", a.st.InstallID(), "simulated_household", a.hh != nil)

	restart := false
	select {
	case <-ctx.Done():
	case <-a.restart:
		restart = true
		log.Info("restarting in place: an erasure was asked for (the store is rewritten while nothing runs)")
	}
	log.Info("shutting down")
	_ = sd.notify("STOPPING=1")
	done := make(chan error, 1)
	go func() { done <- a.shutdown() }()
	select {
	case err := <-done:
		if err == nil && restart {
			return errRestart
		}
		return err
	case <-time.After(a.cfg.ShutdownTimeout.D()):
	}
	// Something did not stop: say what, and close the store anyway (what it
	// committed is safe either way; Close writes the last checkpoint), unless the
	// store itself is what hangs.
	var waiting []string
	for group, hs := range a.health() {
		for _, h := range hs {
			if h.State != supervise.StateStopped {
				waiting = append(waiting, group+"/"+h.Name)
			}
		}
	}
	sort.Strings(waiting)
	closed := make(chan error, 1)
	go func() { closed <- a.st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Error("store close after the shutdown timeout failed", "err", err)
		}
	case <-time.After(2 * time.Second):
		log.Error("the store did not close within 2s after the shutdown timeout")
	}
	return fmt.Errorf("shutdown took longer than shutdown_timeout (%s), still stopping: %s; exiting anyway (readings not yet acknowledged will be sent again by their devices)",
		a.cfg.ShutdownTimeout.D(), strings.Join(waiting, ", "))
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func (a *agent) shutdown() error {
	// 1. Stop sources: no new readings (the broker stage closes the broker).
	a.stages.sources.Stop()
	// 2. Drain: the stages catch up with everything committed, in data-flow order.
	a.stages.pipeline.Stop()
	for _, stop := range []func(){a.stopHUP, a.stopReport} {
		if stop != nil {
			stop()
		}
	}
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
	a.flushSync() // sync.go
	// 3. The admin API answers until here.
	a.stages.admin.Stop()
	for _, g := range []*supervise.Group{a.stages.sources, a.stages.pipeline, a.stages.admin} {
		g.Unregister()
	}
	// 4. Commit and close the store.
	if err := a.st.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	a.gov.Close()
	a.log.Info("stopped", "uptime", time.Since(a.started).Round(time.Second))
	return errors.Join(errs...)
}

// simulated reports whether id is a device of the simulated household this agent
// runs: those carry no personal data, so their summaries need no consent. It is the
// set the agent built, not a name pattern a real device could imitate.
func (a *agent) simulated(id string) bool { return a.simIDs[id] }
