package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Flash figures: what a broker process writes to storage while a paced load (or an
// idle spell) runs, extrapolated to a day — the wear a hub's SD card or eMMC sees
// (issue 17, docs/performance.md "Flash: bench-flash").

// ioCounters are the write figures of /proc/PID/io.
type ioCounters struct {
	writeBytes int64 // bytes the process caused to be sent to the block layer (page cache write-back, mmapped pages included)
	wchar      int64 // bytes the process passed to write(2), pwrite(2) and the like
}

// readIO reads /proc/pid/io; zero counters when the kernel does not say.
func readIO(pid int) ioCounters {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioCounters{}
	}
	return parseIO(string(b))
}

func parseIO(s string) ioCounters {
	var c ioCounters
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "write_bytes":
			c.writeBytes = n
		case "wchar":
			c.wchar = n
		}
	}
	return c
}

// blockStat returns the /sys stat file of the block device dir's file system is on,
// or "" when it is not on one (tmpfs, overlay) or the file is unreadable.
func blockStat(dir string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return ""
	}
	dev := uint64(st.Dev) //nolint:unconvert // Dev is uint32 on some architectures
	path := fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(dev), unix.Minor(dev))
	if _, err := readSectorsWritten(path); err != nil {
		return ""
	}
	return path
}

// deviceName is the name of the block device of a /sys/dev/block/M:m/stat path (vda,
// mmcblk0p2), or the path itself.
func deviceName(statPath string) string {
	if target, err := filepath.EvalSymlinks(filepath.Dir(statPath)); err == nil {
		return filepath.Base(target)
	}
	return statPath
}

func readSectorsWritten(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseSectorsWritten(string(b))
}

// parseSectorsWritten reads the sectors written (the 7th field, in 512-byte units
// whatever the device's sector size: Documentation/block/stat.rst) of a block
// device's stat file.
func parseSectorsWritten(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) < 7 {
		return 0, fmt.Errorf("block stat: %d fields, want at least 7", len(f))
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("block stat: sectors written: %w", err)
	}
	return n, nil
}

// snapshot is a broker process's counters at one instant.
type snapshot struct {
	at      time.Time
	cpu     time.Duration
	io      ioCounters
	sectors int64 // of the device, -1 when unknown
}

// takeSnapshot reads pid's CPU time and I/O counters and, when statPath is set, the
// device's sectors written.
func takeSnapshot(pid int, statPath string) (snapshot, error) {
	s := snapshot{at: time.Now(), sectors: -1}
	var err error
	if s.cpu, _, err = procStats(pid); err != nil {
		return s, err
	}
	s.io = readIO(pid)
	if statPath != "" {
		if n, err := readSectorsWritten(statPath); err == nil {
			s.sectors = n
		}
	}
	return s, nil
}

// usage is what a process spent and wrote between two snapshots.
type usage struct {
	elapsed    time.Duration
	cpu        time.Duration
	writeBytes int64
	wchar      int64
	devBytes   int64 // written to the device by every process, -1 when unknown
}

func (a snapshot) to(b snapshot) usage {
	u := usage{elapsed: b.at.Sub(a.at), cpu: b.cpu - a.cpu, writeBytes: b.io.writeBytes - a.io.writeBytes,
		wchar: b.io.wchar - a.io.wchar, devBytes: -1}
	if a.sectors >= 0 && b.sectors >= 0 {
		u.devBytes = (b.sectors - a.sectors) * 512
	}
	return u
}

// perDay extrapolates n bytes written over the usage's elapsed time to a day.
func (u usage) perDay(n int64) float64 {
	if u.elapsed <= 0 {
		return 0
	}
	return float64(n) / u.elapsed.Seconds() * 86400
}

// cpuPercent is the CPU time over the elapsed time, in % of one core.
func (u usage) cpuPercent() float64 {
	if u.elapsed <= 0 {
		return 0
	}
	return 100 * u.cpu.Seconds() / u.elapsed.Seconds()
}

// idlePhase keeps the broker pid running with no readings for d and returns what it
// spent and wrote meanwhile.
func idlePhase(pid int, statPath string, d time.Duration) (usage, error) {
	s0, err := takeSnapshot(pid, statPath)
	if err != nil {
		return usage{}, err
	}
	time.Sleep(d)
	s1, err := takeSnapshot(pid, statPath)
	if err != nil {
		return usage{}, err
	}
	return s0.to(s1), nil
}

// humanBytes formats n bytes (binary multiples, like the table) up to GB.
// internal/household.HumanBytes stops at MB, which a day of flash writes exceeds.
func humanBytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}

// printFlash prints a run's flash figures: the paced load's, then the idle spell's.
func (r result) printFlash(w io.Writer, device string) {
	if r.msgs > 0 {
		u := r.use
		fmt.Fprintf(w, "%-10s flash, load: write_bytes %s (%s/reading, %s/day), wchar %s (%s/reading, %s/day)%s; CPU %.3f ms/reading, %.2f%% of a core",
			r.name, humanBytes(float64(u.writeBytes)), humanBytes(float64(u.writeBytes)/float64(r.msgs)), humanBytes(u.perDay(u.writeBytes)),
			humanBytes(float64(u.wchar)), humanBytes(float64(u.wchar)/float64(r.msgs)), humanBytes(u.perDay(u.wchar)),
			deviceNote(u, device), float64(u.cpu.Microseconds())/1000/float64(r.msgs), u.cpuPercent())
		if r.perCommit > 0 {
			fmt.Fprintf(w, "; %.1f readings per commit", r.perCommit)
		}
		fmt.Fprintln(w)
	}
	if u := r.idle; u != nil {
		fmt.Fprintf(w, "%-10s flash, idle %s: write_bytes %s (%s/day), wchar %s (%s/day)%s; CPU %.2f%% of a core\n",
			r.name, u.elapsed.Round(time.Second), humanBytes(float64(u.writeBytes)), humanBytes(u.perDay(u.writeBytes)),
			humanBytes(float64(u.wchar)), humanBytes(u.perDay(u.wchar)), deviceNote(*u, device), u.cpuPercent())
	}
}

func deviceNote(u usage, device string) string {
	if u.devBytes < 0 {
		return ""
	}
	return fmt.Sprintf(", device %s %s (%s/day; device-wide: every process's writes)", device, humanBytes(float64(u.devBytes)), humanBytes(u.perDay(u.devBytes)))
}

// storeKeyRE is what a key under store: may look like; hearth itself refuses keys it
// does not know (with their line).
var storeKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// storeOverrides are -store-config and -store: lines added under store: in the
// hearth.yaml the load writes, in the order given.
type storeOverrides [][2]string

// String and Set make -store KEY=VALUE a repeatable flag.
func (o *storeOverrides) String() string {
	var parts []string
	for _, kv := range *o {
		parts = append(parts, kv[0]+": "+kv[1])
	}
	return strings.Join(parts, "; ")
}

// Set adds one KEY=VALUE (or "key: value").
func (o *storeOverrides) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		k, v, ok = strings.Cut(s, ":")
	}
	if !ok {
		return fmt.Errorf("store override %q: want KEY=VALUE", s)
	}
	return o.add(k, v)
}

func (o *storeOverrides) add(k, v string) error {
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !storeKeyRE.MatchString(k) {
		return fmt.Errorf("store override %q: the key must be lower-case letters, digits and _", k)
	}
	if v == "" || strings.ContainsAny(v, "\n\r#") {
		return fmt.Errorf("store override %s: the value must be one non-empty line without #", k)
	}
	for _, kv := range *o {
		if kv[0] == k {
			return fmt.Errorf("store override %s given twice", k)
		}
	}
	*o = append(*o, [2]string{k, v})
	return nil
}

// parseStoreConfig reads "key: value; key: value" (as -store-config and bench-flash's
// configs give them); "" and "default" are no overrides.
func parseStoreConfig(s string) (storeOverrides, error) {
	var o storeOverrides
	if s = strings.TrimSpace(s); s == "" || s == "default" {
		return o, nil
	}
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("store config %q: want key: value", strings.TrimSpace(part))
		}
		if err := o.add(k, v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// storeYAML is the store: section of the load's hearth.yaml: max_delay from
// -store-max-delay (nil when not given: hearth's default) unless an override sets
// it, then the overrides; "" when there is nothing to set.
func storeYAML(maxDelay *time.Duration, o storeOverrides) string {
	var b strings.Builder
	if maxDelay != nil && !o.has("max_delay") {
		fmt.Fprintf(&b, "  max_delay: %s\n", *maxDelay)
	}
	for _, kv := range o {
		fmt.Fprintf(&b, "  %s: %s\n", kv[0], kv[1])
	}
	if b.Len() == 0 {
		return ""
	}
	return "store:\n" + b.String()
}

func (o storeOverrides) has(k string) bool {
	for _, kv := range o {
		if kv[0] == k {
			return true
		}
	}
	return false
}

// flashRow is one line of bench-flash's table.
type flashRow struct {
	run       string        // "hearth, default", "mosquitto (persistence on)", "hearth idle after default"
	readings  int           // readings of the load; 0 for an idle spell
	p99       time.Duration // 0 for an idle spell
	perCommit float64       // readings per commit; 0 when unknown
	store     float64       // the bytes hearth's store says it wrote; negative when unknown (mosquitto, an older hearth)
	use       usage
}

// flashTable prints the rows as one Markdown table: per reading and per day for the
// process's write_bytes and wchar, the device's counter per day (device-wide), and
// the CPU spent.
func flashTable(w io.Writer, rows []flashRow) {
	fmt.Fprintln(w, "| run | p99 PUBACK | readings per commit | written per reading (write_bytes / wchar) | per day (write_bytes / wchar) | store's own account per day | device per day (all processes) | CPU % of a core | CPU per reading |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	dash := "—"
	for _, r := range rows {
		p99, perCommit, perReading, cpuPer := dash, dash, dash, dash
		if r.readings > 0 {
			p99 = fmt.Sprintf("%.1f ms", float64(r.p99.Microseconds())/1000)
			perReading = humanBytes(float64(r.use.writeBytes)/float64(r.readings)) + " / " + humanBytes(float64(r.use.wchar)/float64(r.readings))
			cpuPer = fmt.Sprintf("%.2f ms", r.use.cpu.Seconds()*1000/float64(r.readings))
		}
		if r.perCommit > 0 {
			perCommit = fmt.Sprintf("%.1f", r.perCommit)
		}
		dev, own := dash, dash
		if r.use.devBytes >= 0 {
			dev = humanBytes(r.use.perDay(r.use.devBytes))
		}
		if r.store >= 0 {
			own = humanBytes(r.use.perDay(int64(r.store)))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s / %s | %s | %s | %.2f%% | %s |\n", r.run, p99, perCommit, perReading,
			humanBytes(r.use.perDay(r.use.writeBytes)), humanBytes(r.use.perDay(r.use.wchar)), own, dev, r.use.cpuPercent(), cpuPer)
	}
}

// runFlash is -mode flash (make bench-flash). For each store config (as
// -store-config gives it; "default" for none) it runs the paced load against
// mosquitto with persistence on, then against hearth on a fresh data directory;
// after the first config's load each broker also idles for o.idle. Then it prints
// one Markdown table of them all.
// With bare set it also runs the load once on a bare mochi-mqtt broker (nothing
// stored): the CPU floor of the library hearth's broker is built on, at this load.
func runFlash(w io.Writer, hearthBin, mosqBin, dir string, o loadOpts, maxDelay *time.Duration, bare bool, configs []string) error {
	if len(configs) == 0 {
		configs = []string{"default"}
	}
	if o.pace.rate <= 0 || o.msgs < 1 {
		return errors.New("-mode flash needs a paced load: -rate and -messages")
	}
	stores := make([]string, len(configs))
	for i, c := range configs {
		extra, err := parseStoreConfig(c)
		if err != nil {
			return err
		}
		stores[i] = storeYAML(maxDelay, extra)
	}
	fmt.Fprintf(w, "bench-flash: %s; store configs %q\n", o.describe(), configs)
	if o.statPath == "" {
		fmt.Fprintln(w, "the temp dir is not on a block device whose /sys stat is readable: no device column")
	}
	dev := deviceName(o.statPath)
	var rows, idleRows, mqRows, mqIdle []flashRow
	for i, c := range configs {
		oc := o
		if i > 0 {
			oc.idle = 0
		}
		fmt.Fprintf(w, "[%d/%d] %s\n", i+1, len(configs), c)
		var mq result
		if mosqBin != "" {
			var err error
			if mq, err = runMosquitto(mosqBin, dir, true, oc); err != nil {
				return fmt.Errorf("mosquitto beside %s: %w", c, err)
			}
			mq.print()
			mq.printFlash(w, dev)
			mqRows = append(mqRows, flashRow{run: "mosquitto, persistence on (beside " + c + ")", readings: mq.msgs, p99: mq.pct(0.99), store: -1, use: mq.use})
		}
		hdir, err := os.MkdirTemp(dir, "hearth-")
		if err != nil {
			return err
		}
		h, stored, err := runHearth(hearthBin, hdir, oc, stores[i])
		if err != nil {
			return fmt.Errorf("hearth, store config %s: %w", c, err)
		}
		h.print()
		h.printFlash(w, dev)
		if stored != h.msgs {
			return fmt.Errorf("hearth, store config %s: %d of %d readings in the store", c, stored, h.msgs)
		}
		rows = append(rows, flashRow{run: "hearth, " + c, readings: h.msgs, p99: h.pct(0.99), perCommit: h.perCommit, store: h.stored, use: h.use})
		if h.idle != nil {
			idleRows = append(idleRows, flashRow{run: fmt.Sprintf("hearth idle %s after %s", h.idle.elapsed.Round(time.Second), c), store: h.idleStore, use: *h.idle})
		}
		if mq.idle != nil {
			mqIdle = append(mqIdle, flashRow{run: fmt.Sprintf("mosquitto idle %s", mq.idle.elapsed.Round(time.Second)), store: -1, use: *mq.idle})
		}
	}
	var mochiRows []flashRow
	if bare {
		fmt.Fprintln(w, "[bare mochi-mqtt]")
		mo, err := runMochi(o)
		if err != nil {
			return fmt.Errorf("bare mochi: %w", err)
		}
		mo.print()
		mo.printFlash(w, dev)
		mochiRows = append(mochiRows, flashRow{run: "bare mochi-mqtt, nothing stored", readings: mo.msgs, p99: mo.pct(0.99), store: -1, use: mo.use})
		if mo.idle != nil {
			mochiRows = append(mochiRows, flashRow{run: fmt.Sprintf("bare mochi-mqtt idle %s", mo.idle.elapsed.Round(time.Second)), store: -1, use: *mo.idle})
		}
	}
	fmt.Fprintf(w, "\n%s; device: %s (its counter is device-wide: every process's writes)\n\n", o.describe(), dev)
	flashTable(w, slices.Concat(rows, idleRows, mqRows, mqIdle, mochiRows))
	return nil
}
