package hx711

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hearth-iot/hearth/device/periph/periphtest"
)

// BenchmarkReadUnderLoad reads a fake HX711 in real time, with every pin operation
// costing opCost of busy CPU (a GPIO ioctl on a Raspberry Pi 4 takes about 1µs), on
// one P (GOMAXPROCS=1), alone and with a goroutine spinning beside it. The fake chip
// powers down when it sees the clock high past 60µs, as the real one does, so a
// preemption inside a high phase really corrupts the word. Reported: wall time per
// good read, reads discarded for a slow clock (%), and corrupted words the driver
// took as good (must be 0).
func BenchmarkReadUnderLoad(b *testing.B) {
	const opCost = time.Microsecond
	for _, busy := range []bool{false, true} {
		name := "idle"
		if busy {
			name = "busy-goroutine"
		}
		b.Run(name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			var stop atomic.Bool
			var wg sync.WaitGroup
			if busy {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
					}
				}()
			}
			defer func() { stop.Store(true); wg.Wait() }()
			chip := &periphtest.HX711{Samples: []int32{123456}, Conversion: 100 * time.Microsecond,
				Settle: 200 * time.Microsecond, OpCost: opCost}
			clk, data := chip.Pins()
			var slow atomic.Int64
			d, err := New(clk, data, &Opts{Poll: 50 * time.Microsecond, Count: func(r string) {
				if r == FaultSlowClock {
					slow.Add(1)
				}
			}})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var good, discarded, undetected int
			b.ResetTimer()
			start := time.Now()
			for good < b.N {
				v, err := d.ReadRaw(ctx)
				last, _ := chip.Last()
				switch {
				case err == nil:
					good++
					if last.Corrupt || v != last.Sample {
						undetected++
					}
				case errors.Is(err, ErrSlowClock), errors.Is(err, ErrNotReleased):
					discarded++
				default:
					b.Fatal(err)
				}
			}
			wall := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(wall.Microseconds())/float64(good), "µs/read")
			b.ReportMetric(100*float64(discarded)/float64(good+discarded), "%discarded")
			b.ReportMetric(float64(undetected), "undetected")
			if undetected > 0 {
				b.Errorf("%d corrupted words taken as good", undetected)
			}
		})
	}
}

// BenchmarkReadCPU is the driver's own CPU per 25-pulse read with free pin
// operations (on a fake clock): the cost above the GPIO ioctls themselves.
func BenchmarkReadCPU(b *testing.B) {
	fc := clockwork.NewFakeClock()
	chip := &periphtest.HX711{Samples: []int32{123456}, Now: fc.Now, Advance: fc.Advance}
	clk, data := chip.Pins()
	d, err := New(clk, data, &Opts{Now: fc.Now, Sleep: fc.Advance})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.ReadRaw(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
