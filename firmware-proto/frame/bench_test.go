package frame

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// Cost of a saturated UART (the arithmetic of SPEC.md, "Performance"):
//
//	115200 baud, 8N1 = 10 bits a byte            → 11 520 bytes/s on the wire
//	typical frame: 8 readings, 260 wire bytes    → 11 520 / 260 ≈ 44 frames/s
//	worst case: 1 reading a frame, 42 wire bytes → 11 520 / 42 ≈ 274 frames/s
//	CPU share = frames/s × ns per frame (decode + protobuf unmarshal) / 1e9
//
// BenchmarkSaturatedUART reports that share directly as %core@115200. Measured on the
// dev machine (AMD EPYC, go1.26, 2 vCPUs): about 1.5 µs a typical frame and 0.26 µs a
// one-reading frame, so 44 × 1.5 µs ≈ 66 µs/s ≈ 0.007% of one core, and 274 × 0.26 µs ≈
// 71 µs/s ≈ 0.007%: the 5% budget holds with a margin of about 700×, enough for a
// Raspberry Pi 3 (roughly 10-20× slower per core). SPEC.md, "Performance", has the table.

const uartBytesPerSecond = 115200 / 10 // 8 data bits + start + stop

// typicalReadings is a fridge's usual batch: 8 readings, some with a unit or a label.
func typicalReadings(n int) *fwpb.Readings {
	m := &fwpb.Readings{SentMonoMs: 86_400_000}
	signals := []fwpb.Signal{fwpb.Signal_SIGNAL_TEMPERATURE, fwpb.Signal_SIGNAL_DOOR, fwpb.Signal_SIGNAL_POWER, fwpb.Signal_SIGNAL_HUMIDITY}
	for i := range n {
		r := &fwpb.Reading{
			Seq:    uint64(123_456 + i),
			MonoMs: uint64(86_390_000 + 1250*i),
			WallMs: 1_767_225_600_000 + int64(1250*i),
			Signal: signals[i%len(signals)],
			Value:  3.5 + float64(i)/4,
		}
		if r.Signal == fwpb.Signal_SIGNAL_POWER {
			r.Unit = "W"
		}
		if i == 5 {
			r.Label = "freezer"
		}
		m.Readings = append(m.Readings, r)
	}
	return m
}

// frameStream returns count copies of the frame carrying m, and one frame's wire size.
func frameStream(b *testing.B, m proto.Message, count int) ([]byte, int) {
	one, err := AppendMessage(nil, m)
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Repeat(one, count), len(one)
}

func BenchmarkDecoder(b *testing.B) {
	for _, c := range []struct {
		name string
		m    proto.Message
	}{
		{"readings-1", typicalReadings(1)},
		{"readings-8", typicalReadings(8)},
		{"readings-15", typicalReadings(15)}, // close to a full frame
	} {
		stream, size := frameStream(b, c.m, 64)
		b.Run(fmt.Sprintf("%s/%dB", c.name, size), func(b *testing.B) {
			d := NewDecoder(&loopReader{data: stream}, 0)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Next(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

func BenchmarkParserFeed(b *testing.B) {
	stream, size := frameStream(b, typicalReadings(8), 64)
	p := NewParser(0)
	n := 0
	fn := func(Frame) { n++ }
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		p.Feed(stream, fn)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
	_ = size
}

// BenchmarkSaturatedUART measures the hub's CPU time per received readings frame —
// frame decoding plus protobuf unmarshalling into a reused message — and converts it
// into the share of one core a UART saturated at 115200 baud would cost.
func BenchmarkSaturatedUART(b *testing.B) {
	for _, n := range []int{1, 8} {
		stream, size := frameStream(b, typicalReadings(n), 64)
		b.Run(fmt.Sprintf("readings-%d/%dB", n, size), func(b *testing.B) {
			d := NewDecoder(&loopReader{data: stream}, 0)
			var m fwpb.Readings
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				f, err := d.Next()
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Unmarshal(&m); err != nil {
					b.Fatal(err)
				}
				if len(m.Readings) != n {
					b.Fatalf("%d readings", len(m.Readings))
				}
			}
			nsPerFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			framesPerSecond := float64(uartBytesPerSecond) / float64(size)
			b.ReportMetric(nsPerFrame, "ns/frame")
			b.ReportMetric(framesPerSecond*nsPerFrame/1e9*100, "%core@115200")
		})
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	m := typicalReadings(8)
	dst := make([]byte, 0, 2*MaxFrame)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = AppendMessage(dst[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
