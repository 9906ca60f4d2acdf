package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const procIO = `rchar: 2012
wchar: 4096
syscr: 7
syscw: 3
read_bytes: 0
write_bytes: 12288
cancelled_write_bytes: 0
`

func TestParseIO(t *testing.T) {
	if got := parseIO(procIO); got != (ioCounters{writeBytes: 12288, wchar: 4096}) {
		t.Fatalf("parseIO = %+v, want write_bytes 12288, wchar 4096", got)
	}
}

// readIO reads this very process's counters: writing a file adds to its wchar.
func TestReadIOSeesOwnWrites(t *testing.T) {
	before := readIO(os.Getpid())
	if err := os.WriteFile(filepath.Join(t.TempDir(), "x"), make([]byte, 100_000), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := readIO(os.Getpid()).wchar - before.wchar; d < 100_000 {
		t.Fatalf("wchar grew by %d after writing 100,000 bytes", d)
	}
}

func TestParseSectorsWritten(t *testing.T) {
	// /sys/block/vda/stat: reads, merged, sectors read, ms, writes, merged, sectors written, ...
	n, err := parseSectorsWritten(" 3580126   492035 109689346  1741621 15223420   880919 347218480  3447415        0  1536628  6063454\n")
	if err != nil || n != 347218480 {
		t.Fatalf("parseSectorsWritten = %d, %v; want 347218480", n, err)
	}
	if _, err := parseSectorsWritten("1 2 3"); err == nil || !strings.Contains(err.Error(), "3 fields") {
		t.Fatalf("a short stat line gave %v, want an error naming its 3 fields", err)
	}
}

func TestUsageBetweenSnapshots(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := snapshot{at: t0, cpu: time.Second, io: ioCounters{writeBytes: 1000, wchar: 500}, sectors: 10}
	b := snapshot{at: t0.Add(10 * time.Second), cpu: 1500 * time.Millisecond, io: ioCounters{writeBytes: 11000, wchar: 2500}, sectors: 30}
	u := a.to(b)
	if u.writeBytes != 10000 || u.wchar != 2000 || u.devBytes != 20*512 || u.cpu != 500*time.Millisecond {
		t.Fatalf("usage = %+v", u)
	}
	if d := u.perDay(u.writeBytes); d != 10000.0/10*86400 {
		t.Fatalf("10,000 bytes in 10 s = %.0f a day, want 86,400,000", d)
	}
	if p := u.cpuPercent(); p != 5 {
		t.Fatalf("0.5 s of CPU in 10 s = %.2f%%, want 5%%", p)
	}
	b.sectors = -1 // the device's counter unreadable at the end
	if u := a.to(b); u.devBytes != -1 {
		t.Fatalf("device bytes %d with an unknown counter, want -1", u.devBytes)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[float64]string{512: "512 B", 35.8 * 1024: "35.8 KB", 3 << 20: "3.0 MB", 31 << 30: "31.00 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%.0f) = %q, want %q", n, got, want)
		}
	}
}

func TestStoreConfig(t *testing.T) {
	o, err := parseStoreConfig("commit_pace: 100ms;  flash_budget: 64MB ;")
	if err != nil {
		t.Fatal(err)
	}
	d := time.Millisecond
	if got, want := storeYAML(&d, o), "store:\n  max_delay: 1ms\n  commit_pace: 100ms\n  flash_budget: 64MB\n"; got != want {
		t.Fatalf("storeYAML =\n%s want\n%s", got, want)
	}
	// An override of max_delay replaces -store-max-delay's line: store: has each key once.
	if err := o.Set("max_delay=5ms"); err != nil {
		t.Fatal(err)
	}
	got := storeYAML(&d, o)
	if strings.Count(got, "max_delay") != 1 || !strings.Contains(got, "max_delay: 5ms") || strings.Count(got, "store:") != 1 {
		t.Fatalf("storeYAML with max_delay overridden =\n%s", got)
	}
	if got := storeYAML(nil, nil); got != "" {
		t.Fatalf("nothing to set gave %q", got)
	}
	for _, def := range []string{"", "default", " default "} {
		if o, err := parseStoreConfig(def); err != nil || len(o) != 0 {
			t.Fatalf("parseStoreConfig(%q) = %v, %v; want no overrides", def, o, err)
		}
	}
}

func TestStoreConfigRefused(t *testing.T) {
	for in, want := range map[string]string{
		"commit_pace 1s":                  `"commit_pace 1s": want key: value`,
		"commit_pace: 1s; commit_pace: 2": "commit_pace given twice",
		"Commit-Pace: 1s":                 "lower-case letters",
		"commit_pace: ":                   "non-empty",
		"commit_pace: 1s # comment":       "without #",
	} {
		if _, err := parseStoreConfig(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseStoreConfig(%q) = %v, want an error with %q", in, err, want)
		}
	}
	var o storeOverrides
	if err := o.Set("commit_pace"); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Errorf("-store commit_pace gave %v", err)
	}
}

// A bad config is refused before any run starts (the binaries do not exist here).
func TestRunFlashRefusesBadConfigFirst(t *testing.T) {
	o := loadOpts{pubs: 1, msgs: 1, inflight: 1, pace: household}
	err := runFlash(io.Discard, "/nonexistent/hearth", "/nonexistent/mosquitto", t.TempDir(), o, nil, false, []string{"default", "commit_pace 1s"})
	if err == nil || !strings.Contains(err.Error(), "commit_pace 1s") {
		t.Fatalf("runFlash = %v, want the bad config named", err)
	}
}

func TestFlashTable(t *testing.T) {
	load := usage{elapsed: 100 * time.Second, cpu: 1500 * time.Millisecond, writeBytes: 1000 * 36659, wchar: 1000 * 20480, devBytes: 1 << 30}
	idle := usage{elapsed: 60 * time.Second, cpu: 300 * time.Millisecond, writeBytes: 1 << 20, wchar: 1 << 19, devBytes: -1}
	var b strings.Builder
	flashTable(&b, []flashRow{
		{run: "hearth, default", readings: 1000, p99: 7123 * time.Microsecond, perCommit: 1.04, store: 1000 * 4096, use: load},
		{run: "hearth idle 1m0s after default", store: -1, use: idle},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want header, rule and 2 rows:\n%s", len(lines), b.String())
	}
	cols := strings.Count(lines[0], "|")
	for i, l := range lines {
		if strings.Count(l, "|") != cols {
			t.Errorf("line %d has %d |, the header %d: %s", i, strings.Count(l, "|"), cols, l)
		}
	}
	if want := "| hearth, default | 7.1 ms | 1.0 | 35.8 KB / 20.0 KB | 29.50 GB / 16.48 GB | 3.30 GB | 864.00 GB | 1.50% | 1.50 ms |"; lines[2] != want {
		t.Errorf("load row\n%s\nwant\n%s", lines[2], want)
	}
	if want := "| hearth idle 1m0s after default | — | — | — | 1.41 GB / 720.0 MB | — | — | 0.50% | — |"; lines[3] != want {
		t.Errorf("idle row\n%s\nwant\n%s", lines[3], want)
	}
}

func TestTailWriterKeepsTheEnd(t *testing.T) {
	w := &tailWriter{max: 8}
	for _, s := range []string{"hearth: ", "config.yaml:17: ", "store.x: unknown key"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := string(w.buf); got != "nown key" {
		t.Fatalf("tail = %q, want the last 8 bytes", got)
	}
}

// hearth refusing its configuration at startup is reported with what it printed,
// not as a port that never opened.
func TestStartHearthShowsStartupError(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "hearth")
	// device add succeeds; run fails the way hearth does on a bad key.
	script := "#!/bin/sh\nif [ \"$1\" = device ]; then echo 'MQTT password: pw'; exit 0; fi\necho \"hearth: $4:17: store.bogus: unknown key\" >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := startHearth(fake, dir, 1, "warn", "", "store:\n  bogus: 1\n")
	if err == nil || !strings.Contains(err.Error(), "store.bogus: unknown key") || !strings.Contains(err.Error(), "ended at startup") {
		t.Fatalf("startHearth = %v, want hearth's own error", err)
	}
}

// A paced load with an idle spell against a real mosquitto with persistence on (as
// bench-flash runs it): every message acknowledged, one at a time per publisher, and
// the idle spell measured.
func TestMosquittoPersistentPacedIdle(t *testing.T) {
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			t.Fatal("mosquitto is not installed (make deps installs it)")
		}
	}
	dir := t.TempDir()
	o := loadOpts{pubs: 3, msgs: 5, inflight: 1, pace: pacing{rate: 40, jitter: 0.2, seed: 1}, idle: 100 * time.Millisecond, statPath: blockStat(dir)}
	res, err := runMosquitto(bin, dir, true, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.msgs != 15 || len(res.lat) != 15 {
		t.Fatalf("%d messages, %d acknowledged; want 15", res.msgs, len(res.lat))
	}
	if res.idle == nil || res.idle.elapsed < o.idle {
		t.Fatalf("idle spell %+v, want at least %s", res.idle, o.idle)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "mosquitto-*")); len(m) != 1 {
		t.Fatalf("persistence directories %v, want one", m)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, "mosquitto.conf")); !strings.Contains(string(conf), "persistence true") {
		t.Fatalf("mosquitto.conf without persistence:\n%s", conf)
	}
}
