package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/tmpfstest"
)

// Space says whether the filesystem has the room the next commits may need: the
// pages of the file the disk has not allocated yet (bbolt grows with ftruncate)
// and the next growth step. Here the free space is given (Options.FreeSpace); the
// holes are the real file's.
func TestSpaceNeedsHolesAndNextGrowth(t *testing.T) {
	free := int64(1 << 40)
	s, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), &store.Options{QuotaBytes: 64 << 20,
		FreeSpace: func(string) (int64, error) { return free, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := make([]device.Reading, 1000)
	for i := range rs {
		rs[i] = device.Reading{Device: "plug", Kind: device.KindPlug, Signal: device.SignalPower, Value: float64(i), Boot: 1, Seq: uint64(i + 1)}
	}
	if err := device.Commit(context.Background(), s, rs); err != nil {
		t.Fatal(err)
	}
	d, err := s.DiskSpace()
	if err != nil {
		t.Fatal(err)
	}
	if d.Holes <= 0 || d.Grow != 2<<20 {
		t.Fatalf("%+v: want holes (bbolt grew the file by ftruncate) and a 2 MiB growth step (1/32 of the quota)", d)
	}
	if err := s.Space(); err != nil {
		t.Fatalf("room to spare: %v", err)
	}
	free = d.Need() - 1
	err = s.Space()
	if !errors.Is(err, store.ErrDiskFull) || !strings.Contains(err.Error(), fmt.Sprint(d.Need())) {
		t.Fatalf("one byte short: %v, want ErrDiskFull naming the %d bytes needed", err, d.Need())
	}
	free = d.Need()
	if err := s.Space(); err != nil {
		t.Fatalf("exactly enough: %v", err)
	}
}

// fullDiskChild runs in a tmpfs of its own (TestSpaceOnARealFullDisk): it writes a
// store, fills the disk, restarts the store on it, and reports what Space says,
// then frees the disk and reports again.
func fullDiskChild() {
	dir := os.Getenv(envDir)
	path := filepath.Join(dir, "hearth.db")
	s, err := store.Open(path, &store.Options{QuotaBytes: 64 << 20})
	if err != nil {
		die("open: %v", err)
	}
	rs := make([]device.Reading, 500)
	for i := range rs {
		rs[i] = device.Reading{Device: "plug", Kind: device.KindPlug, Signal: device.SignalPower, Value: float64(i), Boot: 1, Seq: uint64(i + 1)}
	}
	if err := device.Commit(context.Background(), s, rs); err != nil {
		die("commit: %v", err)
	}
	fmt.Printf("before %v\n", s.Space())
	if err := s.Close(); err != nil {
		die("close: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		die("filler: %v", err)
	}
	block := make([]byte, 64<<10)
	for {
		if _, err := f.Write(block); err != nil {
			break // ENOSPC: the disk is full
		}
	}
	f.Close()
	s, err = store.Open(path, &store.Options{QuotaBytes: 64 << 20}) // restarted on the full disk
	if err != nil {
		die("reopen on a full disk: %v", err)
	}
	fmt.Printf("full %s\n", strings.ReplaceAll(fmt.Sprint(s.Space()), "\n", " "))
	if err := os.Remove(filler); err != nil {
		die("remove filler: %v", err)
	}
	fmt.Printf("freed %v\n", s.Space())
	_ = s.Close()
}

// Restarted on a filesystem that is really full (a tmpfs of 8 MiB, mounted in a
// mount namespace of the child's own), the store opens, and Space says it has no
// room, until the disk is freed. The agent's /readyz reports Space.
func TestSpaceOnARealFullDisk(t *testing.T) {
	if err := tmpfstest.Available(); err != nil {
		t.Skipf("%v; TestSpaceNeedsHolesAndNextGrowth covers Space", err)
	}
	dir := t.TempDir()
	child := childCmd(t, "fulldisk", dir)
	res := tmpfstest.Run(t, dir, "8m", child.Args, child.Env)
	if res["before"] != "<nil>" {
		t.Errorf("before the disk filled up: Space = %s, want nil", res["before"])
	}
	if !strings.Contains(res["full"], "disk full") {
		t.Errorf("restarted on a full disk: Space = %q, want disk full", res["full"])
	}
	if res["freed"] != "<nil>" {
		t.Errorf("after the disk was freed: Space = %s, want nil", res["freed"])
	}
}
