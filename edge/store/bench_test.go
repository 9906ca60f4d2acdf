package store_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
)

// benchReadings returns n readings of dev numbered from seq+1, as a plug reports them.
func benchReadings(dev string, seq uint64, n int) []device.Reading {
	rs := make([]device.Reading, n)
	for i := range rs {
		q := seq + uint64(i) + 1
		rs[i] = device.Reading{Device: dev, Kind: device.KindPlug, Signal: device.SignalPower,
			Value: float64(q % 2500), Unit: "W", Boot: 1, Seq: q,
			DeviceTime: time.Unix(1750000000, int64(q)*1e8), HubTime: time.Unix(1750000000, int64(q)*1e8+5e6)}
	}
	return rs
}

// BenchmarkIngest measures durable ingest: b.N readings submitted by many concurrent
// sources in submissions of `per` readings each, every one waited for until durable.
// One op is one reading, so allocs/op and B/op are per reading.
func BenchmarkIngest(b *testing.B) {
	for _, per := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("per=%d", per), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "hearth.db")
			s, err := store.Open(path, &store.Options{QuotaBytes: 1 << 40, QueueLen: 50000})
			if err != nil {
				b.Fatal(err)
			}
			const sources = 32
			// Pre-build the submissions outside the timer.
			perSource := (b.N + sources - 1) / sources
			subs := make([][][]device.Reading, sources)
			for src := range subs {
				dev := fmt.Sprintf("plug%02d", src)
				for seq := 0; seq < perSource; seq += per {
					subs[src] = append(subs[src], benchReadings(dev, uint64(seq), min(per, perSource-seq)))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			var failed error
			var mu sync.Mutex
			for src := range sources {
				wg.Go(func() {
					// Each source keeps up to 64 submissions in flight, as a broker
					// with many clients (or a serial port with a window) does.
					window := make(chan struct{}, 64)
					var inner sync.WaitGroup
					for _, rs := range subs[src] {
						window <- struct{}{}
						inner.Add(1)
						s.Submit(rs, func(err error) {
							if err != nil {
								mu.Lock()
								failed = err
								mu.Unlock()
							}
							<-window
							inner.Done()
						})
					}
					inner.Wait()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			n := perSource * sources
			b.ReportMetric(float64(n)/elapsed.Seconds(), "readings/s")
			st, err := s.Stats()
			if err != nil {
				b.Fatal(err)
			}
			if st.Events != n {
				b.Fatalf("%d events stored, want %d", st.Events, n)
			}
			b.ReportMetric(float64(st.UsedBytes)/float64(n), "disk-B/reading")
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if fi, err := os.Stat(path); err == nil && n >= 100000 {
				b.ReportMetric(float64(fi.Size())/float64(n), "file-B/reading")
			}
		})
	}
}

// BenchmarkCommitLatency paces submissions at 5,000 readings/s (5 readings every
// millisecond, from five devices) and reports the time from Submit to durable.
func BenchmarkCommitLatency(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "hearth.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	lat := make([]time.Duration, 0, b.N*5)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		for d := range 5 {
			rs := benchReadings(fmt.Sprintf("dev%d", d), uint64(i), 1)
			t0 := time.Now()
			wg.Add(1)
			s.Submit(rs, func(err error) {
				if err != nil {
					b.Error(err)
				}
				el := time.Since(t0)
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
				wg.Done()
			})
		}
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
}

// BenchmarkOffline7Days: a hub offline for a week, 10 devices reporting once a second
// each (10 readings/s, 6,048,000 readings), under the default 64 MiB quota. The rollup
// consumer keeps up as in the agent; one outbox entry per device per day stands for
// the summaries that could not be delivered. Reports the file size, what raw history
// was kept and what was evicted, and checks that rollups and outbox are whole.
func BenchmarkOffline7Days(b *testing.B) {
	for range b.N {
		offline7Days(b)
	}
}

func offline7Days(b *testing.B) {
	const (
		devices = 10
		days    = 7
		perDay  = 86400 // readings per device per day
		batch   = 1000
		quota   = 64 << 20
	)
	path := filepath.Join(b.TempDir(), "hearth.db")
	s, err := store.Open(path, &store.Options{QuotaBytes: quota, MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	roll := rollupstage.NewConsumer(s, nil)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	total := devices * days * perDay
	rs := make([]device.Reading, 0, batch)
	maxFile := int64(0)
	outbox := 0
	var maxCommit time.Duration
	t0 := time.Now()
	for i := 0; i < total; i++ {
		dev, sec := i%devices, i/devices
		rs = append(rs, device.Reading{Device: fmt.Sprintf("plug%02d", dev), Kind: device.KindPlug, Signal: device.SignalPower,
			Value: float64((sec/600)%2) * 1200, Unit: "W", Boot: 1, Seq: uint64(sec + 1),
			HubTime: start.Add(time.Duration(sec) * time.Second)})
		if len(rs) < batch && i != total-1 {
			continue
		}
		c0 := time.Now()
		if err := device.Commit(context.Background(), s, rs); err != nil {
			b.Fatalf("reading %d: %v", i, err)
		}
		maxCommit = max(maxCommit, time.Since(c0))
		rs = rs[:0]
		if (i+1)%(50*batch) == 0 || i == total-1 {
			if _, err := roll.CatchUp(); err != nil {
				b.Fatal(err)
			}
			maxFile = max(maxFile, fileSizeOf(path))
		}
		if (i+1)%(devices*perDay) == 0 { // a day ends: its summaries wait in the outbox
			if err := s.Update(func(tx *store.Tx) error {
				for range devices {
					q, err := tx.NextSeq(store.Outbox)
					if err != nil {
						return err
					}
					if err := tx.Put(store.Outbox, store.Key(q), outboxMessage(600)); err != nil {
						return err
					}
					outbox++
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	}
	elapsed := time.Since(t0)
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var rolled uint64
	var dayRecords, boxed int
	_ = s.View(func(tx *store.Tx) error {
		boxed = tx.Count(store.Outbox)
		return tx.Days("0000", "9999", func(d *store.Day) error {
			rolled += uint64(d.Stats.Count)
			dayRecords++
			return nil
		})
	})
	if rolled != uint64(total) {
		b.Fatalf("rollups count %d readings, want all %d", rolled, total)
	}
	if boxed != outbox {
		b.Fatalf("outbox holds %d, want %d", boxed, outbox)
	}
	if maxFile > quota || st.FileBytes > quota {
		b.Fatalf("file reached %d bytes, over the %d quota", maxFile, quota)
	}
	if err := s.Check(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total), "readings")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "readings/s")
	b.ReportMetric(float64(maxFile)/(1<<20), "max-file-MiB")
	b.ReportMetric(float64(st.Events), "raw-kept")
	b.ReportMetric(float64(total-st.Events), "raw-evicted")
	b.ReportMetric(float64(st.Events)/devices/3600, "raw-hours-kept")
	b.ReportMetric(float64(dayRecords), "rollup-days")
	b.ReportMetric(float64(boxed), "outbox")
	b.ReportMetric(float64(maxCommit.Microseconds())/1000, "max-commit-ms")
}

func fileSizeOf(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// BenchmarkOpenCheck measures the page check Open runs, on a store of about 60 MiB
// (800,000 readings): the cost of never trusting a damaged file at start.
func BenchmarkOpenCheck(b *testing.B) {
	path := filepath.Join(b.TempDir(), "hearth.db")
	s, err := store.Open(path, &store.Options{QuotaBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 800 {
		if err := device.Commit(context.Background(), s, benchReadings("plug", uint64(i*1000), 1000)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		b.Run(fmt.Sprintf("skipcheck=%v", skip), func(b *testing.B) {
			var cpu time.Duration // user and system time of the opens: the figure the machine's load does not change
			for range b.N {
				before := cpuTime()
				s, err := store.Open(path, &store.Options{SkipCheck: skip})
				cpu += cpuTime() - before
				if err != nil {
					b.Fatal(err)
				}
				if s.Recovered != "" {
					b.Fatalf("a sound store was taken for damaged and moved aside")
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(fileSizeOf(path))/(1<<20), "file-MiB")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkCommitDiskBytes measures what a commit writes to storage (write_bytes of
// /proc/self/io): bbolt copies every page it changes, so a commit of one reading from
// one of 200 devices rewrites the leaves of the event log, the device's dedupe
// watermark and device record, the pages above them and the meta page. On flash (a
// hub's SD card or eMMC) these bytes are the wear; store.max_delay trades latency for
// fewer, larger commits.
func BenchmarkCommitDiskBytes(b *testing.B) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		b.Skip("no /proc/self/io on this system")
	}
	for _, per := range []int{1, 10, 60} {
		b.Run(fmt.Sprintf("readings=%d", per), func(b *testing.B) {
			s, err := store.Open(filepath.Join(b.TempDir(), "hearth.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			seq := map[string]uint64{}
			commit := func() {
				rs := make([]device.Reading, per)
				for i := range rs {
					dev := fmt.Sprintf("dev-%03d", (len(seq)*7+i)%200)
					seq[dev]++
					rs[i] = benchReadings(dev, seq[dev]-1, 1)[0]
				}
				if err := device.Commit(context.Background(), s, rs); err != nil {
					b.Fatal(err)
				}
			}
			for range 2000 { // a store with 200 devices in it, past its first pages
				commit()
			}
			w0 := procWriteBytes(b)
			b.ResetTimer()
			for b.Loop() {
				commit()
			}
			w := float64(procWriteBytes(b) - w0)
			b.ReportMetric(w/float64(b.N), "disk-B/commit")
			b.ReportMetric(w/float64(b.N*per), "disk-B/reading")
		})
	}
}

func procWriteBytes(b *testing.B) int64 {
	buf, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(string(buf), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			if n, err = strconv.ParseInt(v, 10, 64); err != nil {
				b.Fatal(err)
			}
		}
	}
	return n
}

// outboxMessage is an outbox record of about n bytes: enqueue time, then JSON.
func outboxMessage(n int) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	return strconv.AppendQuote(v, strings.Repeat("s", max(n-10, 0)))
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
