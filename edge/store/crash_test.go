package store_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// The crash harness: a child process (this test binary, re-executed) writes readings
// from several goroutines and a consumer advances a cursor over the log; the child
// prints each range of readings the store told it was durable to a pipe the parent
// reads. The parent SIGKILLs the child at a random moment, reopens the store, and
// checks that every acknowledged reading is there exactly once, that the file passes
// the page check, and that the consumer's cursor and what it derived agree.
//
// `make test` runs it with the default count; `make test-crash` with many more.
var crashCycles = flag.Int("crash.cycles", 20, "SIGKILL cycles of TestCrashKill9")

const (
	envChild = "HEARTH_STORE_TEST_CHILD" // which child to run: crash | fsize
	envDir   = "HEARTH_STORE_TEST_DIR"
	envCycle = "HEARTH_STORE_TEST_CYCLE"
	envLimit = "HEARTH_STORE_TEST_FSIZE"

	crashWriters  = 6
	crashConsumer = "crash.consumer"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envChild) {
	case "crash":
		crashChild()
		os.Exit(0)
	case "fsize":
		fsizeChild()
		os.Exit(0)
	case "fulldisk":
		fullDiskChild()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childCmd returns a command re-executing this test binary as the named child.
// Under `go test -exec qemu-aarch64-static` (make test-arm64) the binary is for
// another architecture and this host has no binfmt handler: the child then runs
// under the same emulator.
func childCmd(t *testing.T, child, dir string, env ...string) *exec.Cmd {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^$"}
	if err := exec.Command(os.Args[0], "-test.run=^$", "-test.list=^$").Run(); err != nil && strings.Contains(err.Error(), "exec format error") {
		qemu := map[string]string{"arm64": "qemu-aarch64-static", "arm": "qemu-arm-static", "riscv64": "qemu-riscv64-static"}[runtime.GOARCH]
		if qemu == "" {
			t.Fatalf("cannot run the child %s: %v", os.Args[0], err)
		}
		args = append([]string{qemu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), envChild+"="+child, envDir+"="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "child: "+format+"\n", args...)
	os.Exit(3)
}

// crashChild writes until it is killed.
func crashChild() {
	dir := os.Getenv(envDir)
	cycle, _ := strconv.Atoi(os.Getenv(envCycle))
	// A quota far above what the harness writes: eviction would (rightly) delete
	// acknowledged readings, which is quota_test's subject, not this one's.
	s, err := store.Open(filepath.Join(dir, "hearth.db"), &store.Options{MaxBatch: 512, QuotaBytes: 4 << 30})
	if err != nil {
		die("open: %v", err)
	}
	var outMu sync.Mutex
	report := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(line); err != nil {
			die("report: %v", err)
		}
	}
	report("ready\n")
	ctx := context.Background()
	// First the tail the previous child had acknowledged: all duplicates now.
	if b, err := os.ReadFile(filepath.Join(dir, "resend")); err == nil {
		var rs []device.Reading
		for _, f := range strings.Fields(string(b)) {
			dev, boot, seq := parseKey(f)
			rs = append(rs, crashReading(dev, boot, seq))
		}
		if len(rs) > 0 {
			if err := device.Commit(ctx, s, rs); err != nil {
				die("resend: %v", err)
			}
			report("resent\n")
		}
	}
	// A consumer: counts events in the rollups bucket, cursor in the same transaction.
	go func() {
		for {
			var cur, count uint64
			_ = s.View(func(tx *store.Tx) error {
				cur = tx.Cursor(crashConsumer)
				count, _ = strconv.ParseUint(string(tx.Get(store.Rollups, []byte(crashConsumer))), 10, 64)
				return nil
			})
			n := uint64(0)
			last, err := s.ReadEvents(cur, 1000, func(uint64, *device.Reading) error { n++; return nil })
			if err != nil {
				die("consumer read: %v", err)
			}
			if n == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			if err := s.Update(func(tx *store.Tx) error {
				if err := tx.Put(store.Rollups, []byte(crashConsumer), strconv.AppendUint(nil, count+n, 10)); err != nil { // a JSON number
					return err
				}
				return tx.SetCursor(crashConsumer, last)
			}); err != nil {
				die("consumer update: %v", err)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
			dev := fmt.Sprintf("dev%d", w)
			boot := uint64(cycle + 1)
			seq := uint64(0)
			for {
				n := 1 + rng.IntN(200)
				rs := make([]device.Reading, n)
				for i := range rs {
					rs[i] = crashReading(dev, boot, seq+uint64(i)+1)
				}
				if err := device.Commit(ctx, s, rs); err != nil {
					die("commit: %v", err)
				}
				report(fmt.Sprintf("ack %s %d %d %d\n", dev, boot, seq+1, seq+uint64(n)))
				seq += uint64(n)
				// Pace, so that 150 cycles keep the file near 100 MB.
				time.Sleep(time.Duration(2000+rng.IntN(4000)) * time.Microsecond)
			}
		})
	}
	wg.Wait()
}

func crashReading(dev string, boot, seq uint64) device.Reading {
	return device.Reading{Device: dev, Kind: device.KindPlug, Signal: device.SignalPower, Value: float64(seq % 3000),
		Unit: "W", Boot: boot, Seq: seq, HubTime: time.Unix(1750000000, int64(seq))}
}

// devBoot is one writer's readings in one cycle: acknowledged in order from seq 1.
type devBoot struct {
	dev  string
	boot uint64
}

type readingKey struct {
	dev       string
	boot, seq uint64
}

func (k readingKey) String() string { return fmt.Sprintf("%s/%d/%d", k.dev, k.boot, k.seq) }

func parseKey(f string) (string, uint64, uint64) {
	p := strings.Split(f, "/")
	if len(p) != 3 {
		die("resend key %q", f)
	}
	b, _ := strconv.ParseUint(p[1], 10, 64)
	q, _ := strconv.ParseUint(p[2], 10, 64)
	return p[0], b, q
}

func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	acked := map[devBoot]uint64{} // highest acknowledged seq; 1..it were acknowledged
	var tail []readingKey
	total := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	productive := 0
	for cycle := range *crashCycles {
		cmd := childCmd(t, "crash", dir, fmt.Sprintf("%s=%d", envCycle, cycle))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan map[devBoot]uint64, 1)
		ready := make(chan struct{})
		go func() {
			got := map[devBoot]uint64{}
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(ready)
					continue
				}
				f := strings.Fields(sc.Text())
				if len(f) == 5 && f[0] == "ack" {
					boot, _ := strconv.ParseUint(f[2], 10, 64)
					from, _ := strconv.ParseUint(f[3], 10, 64)
					to, _ := strconv.ParseUint(f[4], 10, 64)
					k := devBoot{f[1], boot}
					if from != got[k]+1 {
						panic(fmt.Sprintf("child acknowledged %s %d..%d after ..%d", k.dev, from, to, got[k]))
					}
					got[k] = to
				}
			}
			lines <- got
		}()
		// A random moment: one cycle in five counted from the start of the process
		// (so some kills land in Open: its check, migration, first initialisation),
		// the others from the moment the store is open (mid-write).
		if rng.IntN(5) > 0 {
			select {
			case <-ready:
			case got := <-lines: // the child ended before it was ready
				lines <- got
			}
		}
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		got := <-lines
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child ended by itself (%v), not by SIGKILL", cycle, werr)
		}
		if len(got) > 0 {
			productive++
			tail = tail[:0]
		}
		for k, n := range got {
			acked[k] = n
			total += int(n)
			// The next child first sends again the last readings acknowledged here.
			for q := n - min(n, 8) + 1; q <= n; q++ {
				tail = append(tail, readingKey{k.dev, k.boot, q})
			}
		}
		verifyAfterCrash(t, dir, cycle, acked)
		var b strings.Builder
		for _, k := range tail {
			b.WriteString(k.String() + " ")
		}
		if err := os.WriteFile(filepath.Join(dir, "resend"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("crash harness: %d SIGKILL cycles (%d killed mid-write), %d acknowledged readings, lost 0, duplicated 0",
		*crashCycles, productive, total)
	if productive == 0 {
		t.Fatal("no cycle acknowledged anything: the harness tested nothing")
	}
}

// verifyAfterCrash opens the store as a restarted hearth would and checks it.
func verifyAfterCrash(t *testing.T, dir string, cycle int, acked map[devBoot]uint64) {
	t.Helper()
	s, err := store.Open(filepath.Join(dir, "hearth.db"), nil)
	if err != nil {
		t.Fatalf("cycle %d: reopen after SIGKILL: %v", cycle, err)
	}
	defer s.Close()
	if s.Recovered != "" {
		t.Fatalf("cycle %d: a SIGKILL left a file Open took for corrupt (moved to %s)", cycle, s.Recovered)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	seen := map[devBoot][]bool{}
	var prev uint64
	var cursor, count, upToCursor uint64
	_ = s.View(func(tx *store.Tx) error {
		cursor = tx.Cursor(crashConsumer)
		count, _ = strconv.ParseUint(string(tx.Get(store.Rollups, []byte(crashConsumer))), 10, 64)
		return nil
	})
	if _, err := s.ReadEvents(0, 0, func(seq uint64, r *device.Reading) error {
		if seq != prev+1 {
			return fmt.Errorf("sequence %d follows %d: a hole in the log", seq, prev)
		}
		prev = seq
		k := devBoot{r.Device, r.Boot}
		have := seen[k]
		for uint64(len(have)) <= r.Seq {
			have = append(have, false)
		}
		if have[r.Seq] {
			return fmt.Errorf("reading %s stored twice (second at seq %d)", readingKey{r.Device, r.Boot, r.Seq}, seq)
		}
		have[r.Seq] = true
		seen[k] = have
		if seq <= cursor {
			upToCursor++
		}
		return nil
	}); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	if prev != s.LastSeq() {
		t.Fatalf("cycle %d: last event %d, LastSeq %d", cycle, prev, s.LastSeq())
	}
	lost, all := 0, 0
	for k, n := range acked {
		have := seen[k]
		for q := uint64(1); q <= n; q++ {
			all++
			if q >= uint64(len(have)) || !have[q] {
				if lost < 5 {
					t.Errorf("cycle %d: acknowledged reading %s is missing", cycle, readingKey{k.dev, k.boot, q})
				}
				lost++
			}
		}
	}
	if lost > 0 {
		t.Fatalf("cycle %d: %d of %d acknowledged readings lost", cycle, lost, all)
	}
	// The device and dedupe records, rebuilt from the last checkpoint and the events
	// after it, agree with the log: each device counts its events, and each boot still
	// kept is committed through its highest stored reading (the writers store 1..n).
	events := map[string]uint64{}
	for k, have := range seen {
		for _, ok := range have {
			if ok {
				events[k.dev]++
			}
		}
		if c := s.Committed(k.dev, k.boot); c != 0 && c != uint64(len(have)-1) {
			t.Fatalf("cycle %d: %s boot %d committed through %d, the log holds 1..%d", cycle, k.dev, k.boot, c, len(have)-1)
		}
	}
	for _, d := range s.Devices() {
		if d.Readings != events[d.ID] {
			t.Fatalf("cycle %d: device %s counts %d readings, the log holds %d", cycle, d.ID, d.Readings, events[d.ID])
		}
		delete(events, d.ID)
	}
	if len(events) > 0 {
		t.Fatalf("cycle %d: devices with events but no record: %v", cycle, events)
	}
	if cursor > s.LastSeq() {
		t.Fatalf("cycle %d: consumer cursor %d past the last event %d", cycle, cursor, s.LastSeq())
	}
	if count != upToCursor {
		t.Fatalf("cycle %d: consumer derived %d events but its cursor %d covers %d: cursor and derived data disagree", cycle, count, cursor, upToCursor)
	}
}
