package serial

import (
	"context"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/serial/serialtest"
	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// uartBytesPerSec is a saturated 115200-baud 8N1 UART: 10 bits a byte.
const uartBytesPerSec = 115200 / 10

// stream returns n Readings frames of k readings each (seq from 1) for boot 0 of the
// session, and their total wire length.
func stream(n, k int) [][]byte {
	out := make([][]byte, n)
	seq := uint64(0)
	for i := range out {
		m := &fwpb.Readings{SentMonoMs: uint64(1000 + i)}
		for range k {
			seq++
			m.Readings = append(m.Readings, &fwpb.Reading{Seq: seq, MonoMs: 900 + seq, Signal: fwpb.Signal_SIGNAL_TEMPERATURE, Value: 4.5})
		}
		out[i], _ = frame.AppendMessage(nil, m)
	}
	return out
}

type countSink struct{ n atomic.Int64 }

func (s *countSink) Submit(rs []device.Reading, done func(error)) {
	s.n.Add(int64(len(rs)))
	go done(nil)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportUART reports CPU per frame and the share of one core a saturated 115200-baud
// port of such frames would take.
func reportUART(b *testing.B, cpu time.Duration, frames int, wireBytes int) {
	per := float64(cpu.Nanoseconds()) / float64(frames)
	fps := float64(uartBytesPerSec) / (float64(wireBytes) / float64(frames))
	b.ReportMetric(per, "cpu-ns/frame")
	b.ReportMetric(fps, "frames/s@115200")
	b.ReportMetric(100*fps*per/1e9, "%core@115200")
}

// BenchmarkSourcePTY measures the whole serial source path over a real pty: the
// kernel's tty layer, go.bug.st/serial reads, framing, protobuf, conversion to
// readings, the sink's Submit and done, and the Ack written back. CPU time is the
// process's (getrusage), so it also counts the goroutines writing frames into the
// master and draining Acks from it: an upper bound for the hub's own share.
func BenchmarkSourcePTY(b *testing.B) {
	for _, k := range []int{1, 8} {
		b.Run(map[int]string{1: "1reading", 8: "8readings"}[k], func(b *testing.B) {
			p, err := serialtest.OpenPTY()
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			s, err := New(&Options{Path: p.Path, MaxPending: 64, ReadTimeout: 100 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			sink := &countSink{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx, sink) }()
			go io.Copy(io.Discard, p.Master) // the device's receiver: Acks, TimeSyncs
			hello, _ := frame.AppendMessage([]byte{0}, &fwpb.Hello{DeviceId: "bench", Kind: "fridge", BootId: 1})
			p.Master.Write(hello)
			frames := stream(b.N, k)
			wire := 0
			buf := make([]byte, 0, 64<<10)
			b.ResetTimer()
			c0 := cpuTime()
			for i, f := range frames {
				buf = append(buf, f...)
				wire += len(f)
				if len(buf) > 60<<10 || i == len(frames)-1 {
					if _, err := p.Master.Write(buf); err != nil {
						b.Fatal(err)
					}
					buf = buf[:0]
				}
			}
			for sink.n.Load() < int64(b.N*k) {
				time.Sleep(100 * time.Microsecond)
			}
			cpu := cpuTime() - c0
			b.StopTimer()
			reportUART(b, cpu, b.N, wire)
			cancel()
			<-done
		})
	}
}

// BenchmarkSessionPath is the hub's per-frame work without I/O: split the frame,
// unmarshal, convert and validate 8 readings, Submit, apply the commit, queue the Ack.
func BenchmarkSessionPath(b *testing.B) {
	s, err := New(&Options{Path: "/dev/null", MaxPending: 64})
	if err != nil {
		b.Fatal(err)
	}
	s.sess.w = io.Discard
	s.sess.onHello(&fwpb.Hello{DeviceId: "bench", Kind: "fridge", BootId: 1})
	sink := &countSink{}
	frames := stream(b.N, 8)
	wire := 0
	for _, f := range frames {
		wire += len(f)
	}
	p := frame.NewParser(0)
	buf := make([]byte, 0, frame.MaxFrame)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuTime()
	for _, f := range frames {
		p.Feed(f, func(fr frame.Frame) {
			s.sess.handle(inFrame{typ: fr.Type, buf: append(buf[:0], fr.Payload...)}, sink)
		})
		for s.sess.inflight > 0 {
			s.sess.result(<-s.results)
		}
		s.sess.flush()
	}
	cpu := cpuTime() - c0
	b.StopTimer()
	reportUART(b, cpu, b.N, wire)
}
