// Command hearth-load measures MQTT ingest: N publishers × M messages at QoS 1, each
// with a window of W publishes in flight, through hearth's embedded broker into its
// durable store — and the same load against a plain mosquitto (no persistence) and a
// bare mochi-mqtt broker (the library hearth's broker is built on, nothing stored) in
// the same run. It prints messages/s, p50/p99 publish-to-PUBACK latency, the peak RSS
// and CPU time per message of each broker process, the ratio of hearth's throughput to
// mosquitto's, what hearth costs over bare mochi, and checks that every reading is in
// hearth's store.
//
//	hearth-load -hearth bin/hearth [-publishers 4] [-messages 25000] [-inflight 32]
//
// With -rate the load is paced like a household's devices: each publisher sends
// -rate messages a second, starting at a random phase within one period, each send
// moved by a uniform jitter (-jitter, a fraction of the period, seeded by -seed; pace.go).
// A paced run, or one with -idle (a spell with no readings after the load, or instead
// of it with -messages 0), also prints each broker's flash figures: write_bytes and
// wchar of /proc/PID/io, the device's sectors written (device-wide), per reading and
// per day, CPU, and hearth's readings per commit (flash.go). -store KEY=VALUE and
// -store-config 'key: value; ...' add lines under store: in hearth's configuration.
//
//	hearth-load -mode flash -rate 0.3333 -inflight 1 -messages 40 [-idle 60s] default 'commit_pace: 1s' ...
//
// runs that load for each store config given (mosquitto with persistence on beside
// each) and prints one Markdown table (make bench-flash).
//
// With -mode slowloris or -mode lockout it measures instead a device connecting
// beside an attack on the broker (attack.go).
//
// The brokers run as child processes on 127.0.0.1 with free ports; the publishers
// are raw MQTT 3.1.1 clients in this process (cheap enough not to be the bottleneck).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hearth-load:", err)
		os.Exit(1)
	}
}

type result struct {
	name      string
	msgs      int
	elapsed   time.Duration
	lat       []time.Duration
	cpu       time.Duration // user+system of the broker process during the run
	peakRSSkB int64
	anonKB    int64   // RssAnon at the end: the process's own memory
	fileKB    int64   // RssFile at the end: mapped files (bbolt's mmap of the store) and the binary
	written   int64   // bytes the broker process caused to be written to storage during the run
	use       usage   // CPU and writes during the load (flash.go)
	perCommit float64 // hearth: readings per group commit during the load, from /metrics; 0 when unknown
	stored    float64 // hearth: the bytes its store says it wrote to disk during the load (-1: unknown)
	idle      *usage  // the -idle spell after the load, if any
	idleStore float64 // the same during the idle spell
}

func (r result) cpuPerMsg() float64 { return float64(r.cpu.Microseconds()) / float64(r.msgs) }

func (r result) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) print() {
	fmt.Printf("%-10s %8d msgs in %7.3fs  %9.0f msgs/s  p50 %8s  p99 %8s  cpu %6.2f µs/msg  peak RSS %6.1f MB (at end: anon %.1f MB, files %.1f MB)  disk %.0f B/msg\n",
		r.name, r.msgs, r.elapsed.Seconds(), r.rate(), r.pct(0.50).Round(time.Microsecond), r.pct(0.99).Round(time.Microsecond),
		r.cpuPerMsg(), float64(r.peakRSSkB)/1024, float64(r.anonKB)/1024, float64(r.fileKB)/1024, float64(r.written)/float64(r.msgs))
}

func run() error {
	hearthBin := flag.String("hearth", "bin/hearth", "the hearth binary")
	mosqBin := flag.String("mosquitto", "/usr/sbin/mosquitto", "the mosquitto binary (-mode flash: empty runs no mosquitto beside hearth)")
	pubs := flag.Int("publishers", 4, "publishers (one device each)")
	msgs := flag.Int("messages", 25000, "messages per publisher")
	inflight := flag.Int("inflight", 32, "QoS 1 publishes in flight per publisher")
	profile := flag.String("profile", "", "write a CPU profile of hearth, taken over the middle of the load, to this file")
	heap := flag.String("heapprofile", "", "write a heap profile of hearth, taken as the load ends, to this file")
	maxDelay := flag.Duration("store-max-delay", 0, "hearth's store.max_delay (not given: hearth's default): linger for more readings before a commit (fewer, larger commits: less CPU per reading, lower throughput)")
	bare := flag.Bool("mochi", true, "also run the load against a bare mochi-mqtt broker (the library hearth's broker is built on, nothing stored): the floor hearth builds on")
	serve := flag.String("serve-mochi", "", "(internal) serve a bare mochi-mqtt broker on this address until interrupted")
	rate := flag.Float64("rate", 0, "messages per second per publisher (0: as fast as acknowledgements allow); e.g. -publishers 200 -rate 5 is the footprint load of 200 devices at 1,000 readings/s")
	jitter := flag.Float64("jitter", 0.2, "paced load: each send moves by a uniform jitter of ± this fraction of the period (1/rate); each publisher also starts at a random phase within one period")
	seed := flag.Uint64("seed", 1, "paced load: the seed of the phases and jitter (the same seed gives the same schedule)")
	idle := flag.Duration("idle", 0, "after the load (or instead of it, with -messages 0) keep each broker running with no readings this long and report what it wrote meanwhile, per day")
	var store storeOverrides
	flag.Var(&store, "store", "KEY=VALUE: a line under store: in hearth's configuration (repeatable; e.g. -store commit_pace=100ms)")
	storeConfig := flag.String("store-config", "", "lines under store: in hearth's configuration, as 'key: value; key: value' (with -store and -store-max-delay; a key given twice is refused)")
	mosqPersist := flag.Bool("mosquitto-persistence", false, "run mosquitto with persistence on (its default autosave settings, the store in the run's temp dir) instead of off")
	mode := flag.String("mode", "bench", "bench: the ingest comparison; flash: bench-flash's table, one run per store config given as arguments (flash.go); slowloris or lockout: a device connecting beside an attack (see attack.go)")
	var ao attackOptions
	flag.IntVar(&ao.attackers, "attackers", 64, "slowloris: half-open connections the attacker keeps open")
	flag.StringVar(&ao.attackFrom, "attack-from", "127.0.0.2", "slowloris: the attacker's addresses (any of 127/8), comma-separated; the connections are spread over them")
	flag.IntVar(&ao.probes, "probes", 50, "slowloris: the device's connects in each phase")
	flag.DurationVar(&ao.duration, "duration", 60*time.Second, "lockout: how long the attack runs")
	flag.Float64Var(&ao.attackRate, "attack-rate", 5, "lockout: wrong passwords per second, each from the next address of 127.0.0.2..9")
	flag.DurationVar(&ao.probeEvery, "probe-every", 2*time.Second, "lockout: time between the device's connects")
	flag.Parse()
	if *serve != "" {
		return serveMochi(*serve, *inflight)
	}
	if *mode != "bench" && *mode != "flash" {
		if ao.attackers < 1 || ao.probes < 1 || ao.duration <= 0 || !(ao.attackRate > 0) || ao.probeEvery <= 0 {
			return errors.New("attackers, probes, duration, attack-rate and probe-every must be positive")
		}
		return runAttack(*mode, *hearthBin, ao)
	}
	profilePath = *profile
	heapPath = *heap
	if *pubs < 1 || *msgs < 0 || *inflight < 1 || *inflight > 65000 {
		return errors.New("publishers and inflight must be positive (inflight ≤ 65000), messages not negative")
	}
	if *msgs == 0 && *idle <= 0 {
		return errors.New("-messages 0 needs -idle: there is nothing else to measure")
	}
	if *rate < 0 || *jitter < 0 || *jitter > 1 || *idle < 0 {
		return errors.New("rate and idle must not be negative, jitter must be within 0..1")
	}
	var storeMaxDelay *time.Duration // nil: hearth's default
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "store-max-delay" {
			storeMaxDelay = maxDelay
		}
	})
	extra, err := parseStoreConfig(*storeConfig)
	if err != nil {
		return err
	}
	for _, kv := range store {
		if err := extra.add(kv[0], kv[1]); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "hearth-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o := loadOpts{pubs: *pubs, msgs: *msgs, inflight: *inflight, pace: pacing{rate: *rate, jitter: *jitter, seed: *seed},
		idle: *idle, statPath: blockStat(dir)}
	if *mode == "flash" {
		return runFlash(os.Stdout, *hearthBin, *mosqBin, dir, o, storeMaxDelay, *bare, flag.Args())
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (store configs are for -mode flash)", flag.Args())
	}

	fmt.Printf("load: %s\n", o.describe())
	mq, err := runMosquitto(*mosqBin, dir, *mosqPersist, o)
	if err != nil {
		return fmt.Errorf("mosquitto: %w", err)
	}
	var mochi result
	if *bare {
		if mochi, err = runMochi(o); err != nil {
			return fmt.Errorf("bare mochi: %w", err)
		}
	}
	h, stored, err := runHearth(*hearthBin, dir, o, storeYAML(storeMaxDelay, extra))
	if err != nil {
		return fmt.Errorf("hearth: %w", err)
	}
	if *msgs > 0 {
		mq.print()
		if *bare {
			mochi.print()
		}
		h.print()
		fmt.Printf("ratio hearth/mosquitto throughput: %.2f (target ≥ 0.50)\n", h.rate()/mq.rate())
		if *bare {
			fmt.Printf("hearth over bare mochi: CPU %+.2f µs/msg, peak RSS %+.1f MB\n",
				h.cpuPerMsg()-mochi.cpuPerMsg(), float64(h.peakRSSkB-mochi.peakRSSkB)/1024)
		}
	}
	if *rate > 0 || *idle > 0 {
		dev := deviceName(o.statPath)
		mq.printFlash(os.Stdout, dev)
		if *bare {
			mochi.printFlash(os.Stdout, dev)
		}
		h.printFlash(os.Stdout, dev)
	}
	fmt.Printf("readings in hearth's store: %d of %d\n", stored, *pubs**msgs)
	if stored != *pubs**msgs {
		return fmt.Errorf("%d readings missing from the store", *pubs**msgs-stored)
	}
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s", addr, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runMosquitto runs the load against mosquitto, with persistence off or, when
// persist, on: its default autosave settings, its store in a fresh directory of dir.
func runMosquitto(bin, dir string, persist bool, o loadOpts) (result, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages %d\n", port, o.inflight)
	if persist {
		pdir, err := os.MkdirTemp(dir, "mosquitto-")
		if err != nil {
			return result{}, err
		}
		cfg += fmt.Sprintf("persistence true\npersistence_location %s/\n", pdir)
		if os.Geteuid() == 0 {
			cfg += "user root\n" // as root it would switch to user mosquitto, which may not enter dir
		}
	} else {
		cfg += "persistence false\n"
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitListening(addr, 10*time.Second); err != nil {
		return result{}, err
	}
	creds := make([][2]string, o.pubs)
	for i := range creds {
		creds[i] = [2]string{fmt.Sprintf("load-%d", i), "x"}
	}
	name := "mosquitto"
	if persist {
		name = "mosquitto+p"
	}
	res, err := load(name, cmd.Process.Pid, addr, creds, o, nil)
	if err != nil {
		return res, err
	}
	return res, o.idleAfter(&res, cmd.Process.Pid)
}

var passwordRE = regexp.MustCompile(`(?m)^MQTT password: (\S+)$`)

// hearthProc is a hearth agent run as a child process, on free ports of 127.0.0.1.
type hearthProc struct {
	cmd     *exec.Cmd
	broker  string        // MQTT listen address
	admin   string        // admin API address
	creds   [][2]string   // device id and password of each registered device
	exited  chan struct{} // closed when the process has ended (waitErr is then set)
	waitErr error
}

// startHearth writes a configuration into dir — the broker's listen address plus
// brokerYAML (indented lines of the broker section), then otherYAML (top-level
// sections) — registers devices load-0 .. load-<devices-1>, and starts hearth with it.
func startHearth(bin, dir string, devices int, logLevel, brokerYAML, otherYAML string) (*hearthProc, error) {
	h := &hearthProc{}
	var err error
	if h.broker, err = freeAddr(); err != nil {
		return nil, err
	}
	if h.admin, err = freeAddr(); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "hearth.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
log: {level: %s}
broker:
  listen: %s
%sadmin:
  listen: %s
  pprof: true
sim:
  enabled: false
report:
  interval: 0s
%s`, filepath.Join(dir, "data"), logLevel, h.broker, brokerYAML, h.admin, otherYAML)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	h.creds = make([][2]string, devices)
	for i := range h.creds {
		id := fmt.Sprintf("load-%d", i)
		out, err := exec.Command(bin, "device", "add", id, "--kind", "sensor", "--config", cfgPath).CombinedOutput()
		if err != nil {
			// The first command to read the configuration: a key hearth refuses shows here.
			return nil, fmt.Errorf("hearth device add with the load's configuration %s: %v: %s", cfgPath, err, bytes.TrimSpace(out))
		}
		m := passwordRE.FindSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("device add printed no password: %s", out)
		}
		h.creds[i] = [2]string{id, string(m[1])}
	}
	h.cmd = exec.Command(bin, "run", "--config", cfgPath)
	stderr := &tailWriter{max: 4 << 10}
	h.cmd.Stderr = io.MultiWriter(os.Stderr, stderr)
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	h.exited = make(chan struct{})
	go func() { h.waitErr = h.cmd.Wait(); close(h.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", h.broker); err == nil {
			c.Close()
			return h, nil
		}
		select {
		case <-h.exited:
			return nil, fmt.Errorf("hearth run --config %s ended at startup (%v): %s", cfgPath, h.waitErr, bytes.TrimSpace(stderr.buf))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("hearth: %s not listening after 10s", h.broker)
		}
	}
}

// stop interrupts hearth and waits for it to end.
func (h *hearthProc) stop() { _ = h.cmd.Process.Signal(os.Interrupt); <-h.exited }

// tailWriter keeps the last max bytes written to it (a child's stderr, read only
// after the child has been waited for).
type tailWriter struct {
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// runHearth runs the load against hearth, configured with storeYAML (its store:
// section), and returns the result and the readings in its store.
func runHearth(bin, dir string, o loadOpts, storeYAML string) (result, int, error) {
	// publish_rate: the load is a flood by design; the default (200/s per device) would refuse it.
	h, err := startHearth(bin, dir, o.pubs, "warn", fmt.Sprintf("  max_inflight: %d\n  publish_rate: 10000000\n  publish_burst: 10000000\n", max(o.inflight, 64)),
		storeYAML)
	if err != nil {
		return result{}, 0, err
	}
	defer h.stop()
	cmd, baddr, aaddr, creds := h.cmd, h.broker, h.admin, h.creds
	var started func()
	if profilePath != "" {
		started = func() { go profileHearth(aaddr, profilePath, o) }
	}
	sum0, n0 := commitReadings(aaddr)
	w0 := storeWritten(aaddr)
	res, err := load("hearth", cmd.Process.Pid, baddr, creds, o, started)
	if err != nil {
		return res, 0, err
	}
	if sum1, n1 := commitReadings(aaddr); n1 > n0 {
		res.perCommit = (sum1 - sum0) / (n1 - n0)
	}
	res.stored = -1
	if w1 := storeWritten(aaddr); w0 >= 0 && w1 >= w0 {
		res.stored = w1 - w0
	}
	if heapPath != "" {
		// The profile, and beside it the text form with the runtime's MemStats.
		for url, path := range map[string]string{"heap": heapPath, "heap?debug=1": heapPath + ".txt"} {
			if err := fetch("http://"+aaddr+"/debug/pprof/"+url, path); err != nil {
				fmt.Fprintln(os.Stderr, "heap profile:", err)
			}
		}
	}
	// Every PUBACK means committed: the store already holds them.
	resp, err := http.Get("http://" + aaddr + "/v1/devices")
	if err != nil {
		return res, 0, err
	}
	defer resp.Body.Close()
	var devs []struct {
		ID       string `json:"id"`
		Readings int    `json:"readings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&devs); err != nil {
		return res, 0, err
	}
	stored := 0
	for _, d := range devs {
		stored += d.Readings
	}
	if commits := metricValue(aaddr, "hearth_store_commits_total"); commits > 0 && o.msgs > 0 {
		fmt.Printf("hearth store: %.0f commits, %.1f readings per commit\n", commits, float64(stored)/commits)
	}
	i0 := storeWritten(aaddr)
	err = o.idleAfter(&res, cmd.Process.Pid)
	res.idleStore = -1
	if i1 := storeWritten(aaddr); i0 >= 0 && i1 >= i0 {
		res.idleStore = i1 - i0
	}
	return res, stored, err
}

// storeWritten is the bytes hearth's store says it has written to its disk since it
// opened (hearth_store_written_bytes_total: the write-ahead log and the database, as
// the store counts them, whatever the kernel's account), -1 when hearth does not say.
func storeWritten(admin string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "hearth_store_written_bytes_total "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// commitReadings returns the sum and count of hearth's readings-per-commit histogram
// (hearth_store_commit_readings; hearth_store_batch_size, if a later store names it so).
func commitReadings(admin string) (sum, count float64) {
	for _, name := range []string{"hearth_store_commit_readings", "hearth_store_batch_size"} {
		if count = metricValue(admin, name+"_count"); count > 0 {
			return metricValue(admin, name+"_sum"), count
		}
	}
	return 0, 0
}

// metricValue reads one unlabelled sample from hearth's /metrics, or 0.
func metricValue(admin, name string) float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// procStats returns the CPU time and peak RSS (VmHWM, kB) of pid.
func procStats(pid int) (time.Duration, int64, error) {
	cpu, m, err := procStatus(pid)
	return cpu, m["VmHWM"], err
}

// procStatus returns the CPU time and the kB fields of /proc/pid/status.
func procStatus(pid int) (time.Duration, map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, nil, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu := time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			m[k], _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return cpu, m, nil
}

// loadOpts describe the load every broker gets.
type loadOpts struct {
	pubs, msgs, inflight int
	pace                 pacing
	idle                 time.Duration // -idle: a spell with no readings after the load
	statPath             string        // the /sys stat file of the temp dir's block device, "" if none
}

func (o loadOpts) describe() string {
	pace := "as fast as acknowledged"
	if o.pace.rate > 0 {
		pace = fmt.Sprintf("%.1f msgs/s in all, random phases, jitter ±%.0f%% of the period, seed %d", o.pace.rate*float64(o.pubs), o.pace.jitter*100, o.pace.seed)
	}
	s := fmt.Sprintf("%d publishers × %d messages, QoS 1, %d in flight each, %s", o.pubs, o.msgs, o.inflight, pace)
	if o.idle > 0 {
		s += fmt.Sprintf("; then %s idle", o.idle)
	}
	return s
}

// idleAfter runs the -idle spell, if any, on the broker pid and records it in res.
func (o loadOpts) idleAfter(res *result, pid int) error {
	if o.idle <= 0 {
		return nil
	}
	u, err := idlePhase(pid, o.statPath, o.idle)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	res.idle = &u
	return nil
}

// load connects every publisher, then runs them all; started, if set, is called when
// the last has connected and the messages begin. With no messages it does nothing.
func load(name string, pid int, addr string, creds [][2]string, o loadOpts, started func()) (result, error) {
	if o.msgs == 0 {
		return result{name: name}, nil
	}
	conns := make([]*publisher, len(creds))
	for i, c := range creds {
		p, err := dial(addr, c[0], c[1])
		if err != nil {
			return result{}, fmt.Errorf("%s: %w", c[0], err)
		}
		defer p.c.Close()
		conns[i] = p
	}
	s0, err := takeSnapshot(pid, o.statPath)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	if started != nil {
		started()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, p := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.run(start, o.msgs, o.inflight, o.pace.schedule(i, o.msgs)) }()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	s1, err := takeSnapshot(pid, o.statPath)
	if err != nil {
		return result{}, err
	}
	_, st, err := procStatus(pid)
	if err != nil {
		return result{}, err
	}
	use := s0.to(s1)
	var lat []time.Duration
	for _, p := range conns {
		lat = append(lat, p.lat...)
	}
	slices.Sort(lat)
	return result{name: name, msgs: len(conns) * o.msgs, elapsed: elapsed, lat: lat, cpu: use.cpu, peakRSSkB: st["VmHWM"],
		anonKB: st["RssAnon"], fileKB: st["RssFile"], written: use.writeBytes, use: use}, nil
}

// profilePath is -profile, heapPath -heapprofile.
var (
	profilePath string
	heapPath    string
)

// profileHearth fetches a CPU profile from hearth's admin API (admin.pprof) while the
// load runs: for a paced load, over its middle third; otherwise over 5 seconds.
func profileHearth(admin, path string, o loadOpts) {
	wait, secs := time.Second, 5
	if o.pace.rate > 0 {
		total := float64(o.msgs) / o.pace.rate
		wait, secs = time.Duration(total/3*float64(time.Second)), max(1, int(total/3))
	}
	time.Sleep(wait)
	if err := fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs), path); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	}
}

// fetch writes the body of url to path.
func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// publisher is one raw MQTT 3.1.1 client.
type publisher struct {
	c   net.Conn
	rd  *bufio.Reader
	dev string
	lat []time.Duration
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendPacket(dst []byte, typ byte, body ...[]byte) []byte {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	dst = append(dst, typ)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		dst = append(dst, d)
		if n == 0 {
			break
		}
	}
	for _, b := range body {
		dst = append(dst, b...)
	}
	return dst
}

// connectPacket is an MQTT 3.1.1 CONNECT: clean session, keep-alive 60 s, user and password.
func connectPacket(clientID, user, pw string) []byte {
	body := mqttString(nil, "MQTT")
	body = append(body, 4, 0xC2, 0, 60)
	body = mqttString(body, clientID)
	body = mqttString(body, user)
	body = mqttString(body, pw)
	return appendPacket(nil, 0x10, body)
}

func dial(addr, user, pw string) (*publisher, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &publisher{c: c, rd: bufio.NewReaderSize(c, 64<<10), dev: user}
	if _, err := c.Write(connectPacket(user, user, pw)); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack [4]byte
	if _, err := io.ReadFull(p.rd, ack[:]); err != nil {
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return nil, fmt.Errorf("CONNACK refused: %x", ack)
	}
	_ = c.SetReadDeadline(time.Time{})
	return p, nil
}

// run publishes msgs readings with at most inflight unacknowledged; with a schedule,
// message i is sent at start+schedule[i] or, when the window is full then, as soon as
// a PUBACK frees it (never before the previous message).
func (p *publisher) run(start time.Time, msgs, inflight int, schedule []time.Duration) error {
	topic := mqttString(nil, "hearth/v1/"+p.dev+"/readings")
	sent := make([]atomic.Int64, 65536) // send time by packet id, Unix ns
	window := make(chan struct{}, inflight)
	readErr := make(chan error, 1)
	p.lat = make([]time.Duration, 0, msgs)
	go func() {
		var hdr [4]byte
		for range msgs {
			if _, err := io.ReadFull(p.rd, hdr[:]); err != nil {
				readErr <- fmt.Errorf("%s: reading PUBACK: %w", p.dev, err)
				return
			}
			if hdr[0] != 0x40 || hdr[1] != 2 {
				readErr <- fmt.Errorf("%s: expected PUBACK, got %x", p.dev, hdr)
				return
			}
			id := binary.BigEndian.Uint16(hdr[2:])
			p.lat = append(p.lat, time.Duration(time.Now().UnixNano()-sent[id].Load()))
			<-window
		}
		readErr <- nil
	}()
	w := bufio.NewWriterSize(p.c, 32<<10)
	var buf, payload []byte
	for i := range msgs {
		if schedule != nil {
			if d := time.Until(start.Add(schedule[i])); d > 0 {
				time.Sleep(d)
			}
		}
		select {
		case window <- struct{}{}:
		case err := <-readErr:
			return err
		}
		id := uint16(i%65535 + 1)
		payload = fmt.Appendf(payload[:0], `{"signal":"temperature","value":%d,"boot":1,"seq":%d}`, i%100, i+1)
		buf = appendPacket(buf[:0], 0x32, topic, binary.BigEndian.AppendUint16(nil, id), payload)
		sent[id].Store(time.Now().UnixNano())
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if schedule != nil || len(window) == cap(window) || i == msgs-1 || w.Buffered() > 16<<10 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	return nil
}
