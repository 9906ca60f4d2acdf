package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

var replayReadings = flag.Int("replay.readings", 1_000_000, "readings in BenchmarkReplayPeakRSS's input")

// BenchmarkReplayPeakRSS replays an HA history export of -replay.readings readings
// (default 1,000,000: 10 devices over 31 days, exported entity by entity as Home
// Assistant does, so the input is not in time order) with `hearth replay` in a child
// process, and reports the child's peak RSS. Before issue 15 this input peaked at
// 583 MB (750-850 MB as JSONL); the goal is at most 64 MB for any input size.
func BenchmarkReplayPeakRSS(b *testing.B) {
	dir := b.TempDir()
	in, mapping := writeBigHistory(b, dir, *replayReadings)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var peakKB int64
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, self, "-test.run=^TestCLIHelperProcess$", "--", "replay", "--config", mapping, "--input", in)
		cmd.Env = append(os.Environ(), "HEARTH_TEST_CLI_HELPER=1", "TMPDIR="+dir)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			b.Fatalf("hearth replay: %v: %.2000s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			peakKB = max(peakKB, int64(ru.Maxrss)) // kilobytes on Linux
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(peakKB)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(*replayReadings)*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}

// writeBigHistory writes an HA CSV of n readings of 10 devices (5 on/off, 5 power)
// over 31 days, entity by entity, and its mapping.
func writeBigHistory(b *testing.B, dir string, n int) (input, mapping string) {
	b.Helper()
	type ent struct{ id, kind, signal string }
	ents := []ent{
		{"binary_sensor.fridge", "fridge", "door"}, {"binary_sensor.freezer", "freezer", "door"},
		{"binary_sensor.cupboard_1", "kitchen_cabinet", "door"}, {"binary_sensor.cupboard_2", "kitchen_cabinet", "door"},
		{"binary_sensor.microwave", "microwave", "active"}, {"sensor.fridge_power", "fridge", "power"},
		{"sensor.washer_power", "washer", "power"}, {"sensor.oven_power", "oven", "power"},
		{"sensor.kettle_power", "kettle", "power"}, {"sensor.dishwasher_power", "dishwasher", "power"},
	}
	mapping = filepath.Join(dir, "mapping.yaml")
	m, err := os.Create(mapping)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintln(m, "timezone: Europe/Amsterdam\nentities:")
	for i, e := range ents {
		fmt.Fprintf(m, "  %s: {device: dev-%d, kind: %s, signal: %s}\n", e.id, i, e.kind, e.signal)
	}
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	input = filepath.Join(dir, "history.csv")
	f, err := os.Create(input)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "entity_id,state,last_changed")
	rng := rand.New(rand.NewPCG(15, 31))
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	span := 31 * 24 * time.Hour
	per := n / len(ents)
	for i, e := range ents {
		step := span / time.Duration(per)
		at := start
		for j := range per + boolInt(i < n%len(ents)) {
			at = at.Add(step/2 + time.Duration(rng.Int64N(int64(step))))
			state := []string{"on", "off"}[j%2]
			if e.signal == "power" {
				state = fmt.Sprintf("%.1f", rng.Float64()*2000)
			}
			fmt.Fprintf(w, "%s,%s,%s\n", e.id, state, at.Format("2006-01-02T15:04:05.000Z"))
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return input, mapping
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
