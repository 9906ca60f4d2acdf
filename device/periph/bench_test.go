package periph_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/device/periph/periphtest"
)

// countSink acknowledges at once and counts readings.
type countSink struct {
	n    atomic.Int64
	tick chan struct{}
}

func (s *countSink) Submit(rs []device.Reading, done func(error)) {
	s.n.Add(int64(len(rs)))
	done(nil)
	select {
	case s.tick <- struct{}{}:
	default:
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runSource(b *testing.B, host *periphtest.Host, s periph.Sensor, sink device.Sink) func() {
	src, err := periph.New(&periph.Options{Sensors: []periph.Sensor{s}, Host: host, Sleep: func(time.Duration) {}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); src.Run(ctx, sink) }()
	return func() { cancel(); <-done }
}

// BenchmarkGPIOEdgePath is the CPU of one door event through the source: the edge
// taken from the pin, the debounce wait (1ms) ending, the level read, the reading
// built, validated, submitted and acknowledged, the door state updated. Process CPU
// (getrusage), so it includes the benchmark's goroutine pushing edges.
func BenchmarkGPIOEdgePath(b *testing.B) {
	host := periphtest.NewHost()
	pin := &gpiotest.Pin{N: "GPIO17", L: gpio.Low, EdgesChan: make(chan gpio.Level, 4)}
	host.SetPin("GPIO17", pin)
	sink := &countSink{tick: make(chan struct{}, 1)}
	stop := runSource(b, host, periph.Sensor{Name: "door", Device: "fridge", Kind: device.KindFridge,
		GPIO: &periph.GPIO{Pin: "GPIO17", Signal: device.SignalDoor, Pull: gpio.Float, Debounce: time.Millisecond, Recheck: 50 * time.Millisecond}}, sink)
	defer stop()
	<-sink.tick // the state at open
	b.ResetTimer()
	c0 := cpuTime()
	for i := range b.N {
		pin.EdgesChan <- gpio.Level(i%2 == 0)
		<-sink.tick
	}
	cpu := cpuTime() - c0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/reading")
}

// BenchmarkI2CPoll is the CPU of one SHT3x poll through the source: the measure
// command and 6-byte read on the bus (a simulated sensor: no kernel, no wire), CRC
// checks, conversion, stuck check, two readings built and acknowledged. Per reading.
func BenchmarkI2CPoll(b *testing.B) {
	host := periphtest.NewHost()
	var n uint16
	host.SetBus("1", periphtest.NewBus("i2c-1", map[uint16]periphtest.Device{0x44: &periphtest.SHT3x{
		Next: func() (uint16, uint16, bool) { n++; return 0x6666 + n%8, 0x8000, false }}}))
	sink := &countSink{tick: make(chan struct{}, 1)}
	stop := runSource(b, host, periph.Sensor{Name: "air", Device: "fridge", Kind: device.KindFridge,
		I2C: &periph.I2C{Bus: "1", Addr: 0x44, Driver: periph.DriverSHT3x, Period: time.Nanosecond, StuckAfter: 30}}, sink)
	defer stop()
	<-sink.tick
	b.ResetTimer()
	start, c0 := sink.n.Load(), cpuTime()
	for sink.n.Load()-start < int64(2*b.N) {
		<-sink.tick
	}
	cpu := cpuTime() - c0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(sink.n.Load()-start), "cpu-ns/reading")
}
