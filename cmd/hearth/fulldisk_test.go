package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/tmpfstest"
)

const envFullDiskChild = "HEARTH_TEST_FULLDISK_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envFullDiskChild); dir != "" {
		fullDiskAgent(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fullDiskAgent runs in a tmpfs of its own (TestReadyOnAFullDisk): an agent takes
// readings, stops; the disk fills up; the agent starts again on it and says whether
// it is ready (what /readyz serves), then again once the disk has room.
func fullDiskAgent(dir string) {
	die := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...); os.Exit(3) }
	cfg := fullDiskConfig(dir)
	log := slog.New(slog.DiscardHandler)
	a, err := newAgent(cfg, log, io.Discard)
	if err != nil {
		die("agent: %v", err)
	}
	rs := make([]device.Reading, 500)
	for i := range rs {
		rs[i] = device.Reading{Device: "plug1", Kind: device.KindPlug, Signal: device.SignalPower, Value: float64(i), Boot: 1, Seq: uint64(i + 1)}
	}
	if err := device.Commit(context.Background(), a.st, rs); err != nil {
		die("commit: %v", err)
	}
	fmt.Printf("before %v\n", a.ready())
	a.adminLn.Close()
	for _, ln := range a.brokerListeners() {
		ln.Close()
	}
	if err := a.st.Close(); err != nil {
		die("close: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		die("filler: %v", err)
	}
	for block := make([]byte, 64<<10); ; {
		if _, err := f.Write(block); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	a, err = newAgent(cfg, log, io.Discard) // restarted on the full disk
	if err != nil {
		die("agent on a full disk: %v", err)
	}
	fmt.Printf("full %s\n", strings.ReplaceAll(fmt.Sprint(a.ready()), "\n", " "))
	if err := os.Remove(filler); err != nil {
		die("remove: %v", err)
	}
	fmt.Printf("freed %v\n", a.ready())
}

func fullDiskConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Broker.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Sim.Enabled = false
	cfg.Report.Interval = 0
	return cfg
}

// Restarted on a disk that is really full (a tmpfs of 8 MiB in a mount namespace of
// the child's own), the agent is not ready — it used to say ready until its first
// commit failed — and is ready again once there is room.
func TestReadyOnAFullDisk(t *testing.T) {
	if err := tmpfstest.Available(); err != nil {
		t.Skipf("%v; edge/store's TestSpaceNeedsHolesAndNextGrowth covers the check", err)
	}
	dir := t.TempDir()
	res := tmpfstest.Run(t, dir, "8m", []string{os.Args[0], "-test.run=^$"}, append(os.Environ(), envFullDiskChild+"="+dir))
	if res["before"] != "<nil>" {
		t.Errorf("before the disk filled: ready() = %s, want ready", res["before"])
	}
	if !strings.Contains(res["full"], "disk full") {
		t.Errorf("restarted on a full disk: ready() = %q, want not ready: disk full", res["full"])
	}
	if res["freed"] != "<nil>" {
		t.Errorf("after the disk was freed: ready() = %s, want ready", res["freed"])
	}
}
