package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// fsizeChild writes under RLIMIT_FSIZE until the file cannot grow (EFBIG), then
// reports what the store does after the failure.
func fsizeChild() {
	dir := os.Getenv(envDir)
	limit, _ := strconv.ParseUint(os.Getenv(envLimit), 10, 64)
	signal.Ignore(syscall.SIGXFSZ) // get EFBIG from write/truncate instead of dying
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		die("setrlimit: %v", err)
	}
	s, err := store.Open(filepath.Join(dir, "hearth.db"), nil)
	if err != nil {
		die("open: %v", err)
	}
	ctx := context.Background()
	seq := uint64(0)
	for {
		rs := make([]device.Reading, 100)
		for i := range rs {
			rs[i] = crashReading("plug1", 1, seq+uint64(i)+1)
		}
		err := device.Commit(ctx, s, rs)
		if err != nil {
			fmt.Printf("failed %v\n", errors.Is(err, store.ErrIntakeStopped))
			fmt.Printf("failedreason %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			break
		}
		fmt.Printf("ack %d %d\n", seq+1, seq+100)
		seq += 100
		if seq > 10_000_000 {
			die("the file limit never hit")
		}
	}
	// Intake stays stopped: the failed commit is not retried, new readings are refused
	// without touching the file, and derived stages cannot write either.
	next := []device.Reading{crashReading("plug1", 1, seq+1)}
	err = device.Commit(ctx, s, next)
	fmt.Printf("after %v\n", errors.Is(err, store.ErrIntakeStopped))
	err = s.Update(func(tx *store.Tx) error { return tx.Put(store.Rollups, []byte("k"), []byte(`"v"`)) })
	fmt.Printf("update %v\n", errors.Is(err, store.ErrIntakeStopped))
	fmt.Printf("failedset %v\n", s.Failed() != nil)
	_ = s.Close()
}

// A write error (here EFBIG from RLIMIT_FSIZE, as ENOSPC or EIO would be) stops intake:
// the failure is reported, later readings are refused, nothing acknowledged is lost,
// and the next start works again.
func TestWriteErrorStopsIntake(t *testing.T) {
	dir := t.TempDir()
	cmd := childCmd(t, "fsize", dir, envLimit+"=1048576")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	res := map[string]string{}
	var acked [][2]uint64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 2)
		if f[0] == "ack" {
			var a, b uint64
			fmt.Sscan(f[1], &a, &b)
			acked = append(acked, [2]uint64{a, b})
			continue
		}
		res[f[0]] = f[1]
	}
	for _, k := range []string{"failed", "after", "update", "failedset"} {
		if res[k] != "true" {
			t.Errorf("%s: %q, want true (child said: %v)", k, res[k], res)
		}
	}
	if !strings.Contains(res["failedreason"], "file too large") {
		t.Errorf("failure reason %q does not name the write error", res["failedreason"])
	}
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged before the limit: the test proves nothing")
	}
	s, err := store.Open(filepath.Join(dir, "hearth.db"), nil)
	if err != nil {
		t.Fatalf("reopen after the write error: %v", err)
	}
	defer s.Close()
	if s.Recovered != "" {
		t.Fatalf("the store was taken for corrupt after a write error")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	if _, err := s.ReadEvents(0, 0, func(_ uint64, r *device.Reading) error { have[r.Seq] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range acked {
		for q := a[0]; q <= a[1]; q++ {
			if !have[q] {
				t.Fatalf("acknowledged reading %d lost after the write error", q)
			}
			n++
		}
	}
	last := acked[len(acked)-1][1]
	if err := device.Commit(context.Background(), s, []device.Reading{crashReading("plug1", 1, last+1)}); err != nil {
		t.Fatalf("intake after restart without the limit: %v", err)
	}
	t.Logf("write error after %d acknowledged readings; all present after restart", n)
}
