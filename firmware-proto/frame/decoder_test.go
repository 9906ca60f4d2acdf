package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// got is what a decode run produced, in a form tests compare.
type got struct {
	frames []string // "type=0x02 v1 payload=..."
	faults []string // "ErrBadCRC@offset+len"
	stats  Stats
	err    error
}

func frameString(f Frame) string {
	return fmt.Sprintf("type=%#02x v%d payload=%x", uint8(f.Type), f.Version, f.Payload)
}

func faultString(e *FaultError) string {
	return fmt.Sprintf("%v@%d+%d", e.Err, e.Offset, e.Len)
}

// decodeAll runs a Decoder over r until it returns an error.
func decodeAll(r io.Reader, maxFrame int) got {
	var g got
	d := NewDecoder(r, maxFrame)
	d.OnFault = func(e *FaultError) { g.faults = append(g.faults, faultString(e)) }
	for {
		f, err := d.Next()
		if err != nil {
			g.err = err
			break
		}
		g.frames = append(g.frames, frameString(f))
	}
	g.stats = d.Stats()
	return g
}

// feedAll runs a Parser over chunks, then ends the stream.
func feedAll(chunks [][]byte, maxFrame int) got {
	var g got
	p := NewParser(maxFrame)
	p.OnFault = func(e *FaultError) { g.faults = append(g.faults, faultString(e)) }
	for _, c := range chunks {
		p.Feed(c, func(f Frame) { g.frames = append(g.frames, frameString(f)) })
	}
	p.End()
	g.stats = p.Stats()
	g.err = io.EOF
	return g
}

func mustFrame(t testing.TB, typ MsgType, payload []byte) []byte {
	t.Helper()
	b, err := AppendFrame(nil, typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecoderFaultClasses(t *testing.T) {
	good := mustFrame(t, TypeAck, []byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x04})
	goodRaw := refRaw(1, TypeAck, 11, []byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x04})
	flipped := append([]byte(nil), goodRaw...)
	flipped[6] ^= 0x10
	lostCode := append([]byte(nil), good...)
	lostCode[0] = 0xFE

	cases := []struct {
		name  string
		in    []byte
		fault error // nil: the stream is all good
	}{
		{"bad COBS", lostCode, ErrBadCOBS},
		{"too long", refWire(refRaw(1, TypeReadings, 600, make([]byte, 600))), ErrTooLong},
		{"too long decoded", refWire(refRaw(1, TypeReadings, 512, bytes.Repeat([]byte{0}, 507))), ErrTooLong},
		{"shorter than header and CRC", []byte{0x06, 1, 2, 3, 4, 5, 0}, ErrTruncated},
		{"one byte", []byte{0x02, 0x42, 0}, ErrTruncated},
		{"fewer than declared", refWire(refRaw(1, TypeAck, 12, make([]byte, 11))), ErrTruncated},
		{"more than declared", refWire(refRaw(1, TypeAck, 10, make([]byte, 11))), ErrBadLength},
		{"bit flip", refWire(flipped), ErrBadCRC},
		{"version 2", refWire(refRaw(2, TypeAck, 3, []byte{8, 1, 2})), ErrBadVersion},
		{"version 0", refWire(refRaw(0, TypeAck, 0, nil)), ErrBadVersion},
		{"eof mid-frame", good[:len(good)-1], ErrTruncated},
		{"idle delimiters only", []byte{0, 0, 0}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each bad segment is followed by a good frame, which must come through.
			in := append(append([]byte(nil), c.in...), good...)
			if c.name == "eof mid-frame" {
				in = append(append([]byte(nil), good...), c.in...)
			}
			g := decodeAll(bytes.NewReader(in), 0)
			if g.err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", g.err)
			}
			if len(g.frames) != 1 || g.frames[0] != frameString(Frame{1, TypeAck, goodRaw[4:15]}) {
				t.Fatalf("frames = %v, want the good Ack", g.frames)
			}
			if c.fault == nil {
				if len(g.faults) != 0 || g.stats.Faults() != 0 {
					t.Fatalf("faults = %v, stats %+v; want none", g.faults, g.stats)
				}
				return
			}
			if len(g.faults) != 1 || g.stats.Faults() != 1 {
				t.Fatalf("faults = %v (stats %+v), want one %v", g.faults, g.stats, c.fault)
			}
			var e *FaultError
			d := NewDecoder(bytes.NewReader(in), 0)
			d.OnFault = func(fe *FaultError) { e = fe }
			for _, err := d.Next(); err == nil; _, err = d.Next() {
			}
			if !errors.Is(e, c.fault) {
				t.Fatalf("fault = %v, want %v", e, c.fault)
			}
			if n := statFor(d.Stats(), c.fault); n != 1 {
				t.Fatalf("stats %+v: count for %v = %d, want 1", d.Stats(), c.fault, n)
			}
			if d.Stats().Bytes != uint64(len(in)) {
				t.Fatalf("Bytes = %d, want %d", d.Stats().Bytes, len(in))
			}
		})
	}
}

// statFor returns the Stats field for a fault class.
func statFor(s Stats, class error) uint64 {
	switch class {
	case ErrTooLong:
		return s.TooLong
	case ErrBadCOBS:
		return s.BadCOBS
	case ErrTruncated:
		return s.Truncated
	case ErrBadLength:
		return s.BadLength
	case ErrBadCRC:
		return s.BadCRC
	case ErrBadVersion:
		return s.BadVersion
	}
	panic(class)
}

func TestFaultErrorDetails(t *testing.T) {
	garbage := []byte{0x13, 0x37, 0x00}                         // offsets 0-2
	bad := refWire(refRaw(2, TypeHello, 2, []byte{0x08, 0x01})) // offsets 3-...
	var faults []*FaultError
	d := NewDecoder(bytes.NewReader(cat(garbage, bad)), 0)
	d.OnFault = func(e *FaultError) { faults = append(faults, e) }
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	if len(faults) != 2 {
		t.Fatalf("faults = %v", faults)
	}
	if f := faults[0]; f.Err != ErrBadCOBS || f.Offset != 0 || f.Len != 2 || f.Version != 0 || f.Type != 0 {
		t.Errorf("first fault = %+v", f)
	}
	if f := faults[1]; f.Err != ErrBadVersion || f.Offset != 3 || f.Len != len(bad)-1 || f.Version != 2 || f.Type != TypeHello {
		t.Errorf("second fault = %+v", f)
	}
	if want := "frame at offset 3 (9 bytes): unsupported framing version 2 (type Hello)"; faults[1].Error() != want {
		t.Errorf("Error() = %q, want %q", faults[1].Error(), want)
	}

	// A segment that decodes to nothing reports no version or type.
	faults = nil
	p := NewParser(0)
	p.OnFault = func(e *FaultError) { faults = append(faults, e) }
	p.Feed([]byte{0x00, 0x01, 0x00}, func(Frame) { t.Error("unexpected frame") })
	if len(faults) != 1 || faults[0].Err != ErrTruncated || faults[0].Offset != 1 || faults[0].Len != 1 || faults[0].Version != 0 {
		t.Errorf("faults = %+v", faults)
	}
}

// TestDecoderOversizedNeverBuffered feeds a segment far longer than the limit and checks
// it is reported once and not held in memory.
func TestDecoderOversizedNeverBuffered(t *testing.T) {
	good := mustFrame(t, TypeTimeSync, []byte{0x08, 0x01})
	in := cat(bytes.Repeat([]byte{0x55}, 100_000), []byte{0}, good)
	var faults []*FaultError
	d := NewDecoder(bytes.NewReader(in), 64)
	d.OnFault = func(e *FaultError) { faults = append(faults, e) }
	f, err := d.Next()
	if err != nil || f.Type != TypeTimeSync {
		t.Fatalf("Next = %v, %v", f, err)
	}
	if len(faults) != 1 || faults[0].Err != ErrTooLong || faults[0].Len != MaxEncodedLen(64)+1 {
		t.Fatalf("faults = %v", faults)
	}
	if cap(d.c.acc) != MaxEncodedLen(64) || len(d.buf) != readBufSize {
		t.Fatalf("buffers grew: acc %d, read %d", cap(d.c.acc), len(d.buf))
	}
}

func TestNewDecoderMaxFrame(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{0, MaxFrame}, {-5, MaxFrame}, {1, HeaderLen + CRCLen}, {100, 100}, {1 << 20, maxFrameLimit},
	} {
		if got := NewDecoder(nil, c.in).c.maxFrame; got != c.want {
			t.Errorf("NewDecoder(_, %d): maxFrame %d, want %d", c.in, got, c.want)
		}
		if got := NewParser(c.in).c.maxFrame; got != c.want {
			t.Errorf("NewParser(%d): maxFrame %d, want %d", c.in, got, c.want)
		}
	}
	// The largest frame allowed by a limit passes; one byte more does not.
	for _, limit := range []int{6, 40, MaxFrame, 1000} {
		ok := refWire(refRaw(1, TypeReadings, limit-6, bytes.Repeat([]byte{7}, limit-6)))
		over := refWire(refRaw(1, TypeReadings, limit-5, bytes.Repeat([]byte{7}, limit-5)))
		g := decodeAll(bytes.NewReader(cat(ok, over)), limit)
		if len(g.frames) != 1 || g.stats.TooLong != 1 || g.stats.Faults() != 1 {
			t.Errorf("limit %d: frames %d, stats %+v", limit, len(g.frames), g.stats)
		}
	}
}

// errReader returns data, then err together with the last bytes.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

func TestDecoderReaderError(t *testing.T) {
	boom := errors.New("port closed")
	a := mustFrame(t, TypeAck, []byte{0x10, 0x01})
	b := mustFrame(t, TypeAck, []byte{0x10, 0x02})
	partial := mustFrame(t, TypeAck, []byte{0x10, 0x03})[:4]
	d := NewDecoder(&errReader{data: cat(a, b, partial), err: boom}, 0)
	for i, want := range []byte{0x01, 0x02} {
		f, err := d.Next()
		if err != nil || f.Payload[1] != want {
			t.Fatalf("frame %d = %v, %v", i, f, err)
		}
	}
	for range 2 { // sticky
		if _, err := d.Next(); err != boom {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	}
	if s := d.Stats(); s.Frames != 2 || s.Truncated != 1 || s.Faults() != 1 {
		t.Fatalf("stats = %+v: want 2 frames and the partial one counted truncated once", s)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestDecoderNoProgress(t *testing.T) {
	if _, err := NewDecoder(emptyReader{}, 0).Next(); err != io.ErrNoProgress {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

type liarReader struct{}

func (liarReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestDecoderBrokenReader(t *testing.T) {
	if _, err := NewDecoder(liarReader{}, 0).Next(); err != io.ErrShortBuffer {
		t.Fatalf("err = %v, want io.ErrShortBuffer", err)
	}
}

// TestPayloadIsolated checks that a caller appending to a payload cannot clobber the
// rest of the decoder's buffer.
func TestPayloadIsolated(t *testing.T) {
	in := cat(mustFrame(t, TypeAck, []byte{1, 2}), mustFrame(t, TypeAck, []byte{3, 4}))
	p := NewParser(0)
	var n int
	p.Feed(in, func(f Frame) {
		if cap(f.Payload) != len(f.Payload) {
			t.Errorf("payload cap %d > len %d", cap(f.Payload), len(f.Payload))
		}
		_ = append(f.Payload, 0xEE)
		n++
	})
	if n != 2 || p.Stats().Faults() != 0 {
		t.Fatalf("frames %d, stats %+v", n, p.Stats())
	}
}

// TestSplitsAgree decodes the same noisy stream whole, byte by byte, in random reads
// and by Parser, and compares everything observable with the reference decoder.
func TestSplitsAgree(t *testing.T) {
	stream := noisyStream(t, rand.New(rand.NewPCG(7, 8)), 300)
	for _, maxFrame := range []int{0, 64, 300} {
		whole := decodeAll(bytes.NewReader(stream), maxFrame)
		checkAgainstReference(t, stream, maxFrame, whole)
		if whole.stats.Frames < 80 || whole.stats.Faults() < 50 {
			t.Fatalf("maxFrame %d: stream too tame: %+v", maxFrame, whole.stats)
		}
		for seed := range uint64(20) {
			rng := rand.New(rand.NewPCG(seed, 99))
			r := &chunkReader{data: stream, rng: rng, max: []int{1, 3, 64, 2000}[seed%4]}
			compareRuns(t, fmt.Sprintf("maxFrame %d, reads seed %d", maxFrame, seed), whole, decodeAll(r, maxFrame))
			compareRuns(t, fmt.Sprintf("maxFrame %d, feed seed %d", maxFrame, seed), whole,
				feedAll(randomChunks(stream, rng, 50), maxFrame))
		}
	}
}

func compareRuns(t *testing.T, name string, want, got got) {
	t.Helper()
	if fmt.Sprint(got.frames) != fmt.Sprint(want.frames) {
		t.Fatalf("%s: frames differ:\n got %v\nwant %v", name, got.frames, want.frames)
	}
	if fmt.Sprint(got.faults) != fmt.Sprint(want.faults) {
		t.Fatalf("%s: faults differ:\n got %v\nwant %v", name, got.faults, want.faults)
	}
	if got.stats != want.stats {
		t.Fatalf("%s: stats differ:\n got %+v\nwant %+v", name, got.stats, want.stats)
	}
	if got.err != want.err {
		t.Fatalf("%s: err %v, want %v", name, got.err, want.err)
	}
}

func checkAgainstReference(t *testing.T, stream []byte, maxFrame int, g got) {
	t.Helper()
	if maxFrame <= 0 {
		maxFrame = MaxFrame
	}
	frames, faults := refDecodeStream(stream, maxFrame)
	var want []string
	for _, f := range frames {
		want = append(want, frameString(f))
	}
	if fmt.Sprint(g.frames) != fmt.Sprint(want) {
		t.Fatalf("frames differ from the reference decoder:\n got %v\nwant %v", g.frames, want)
	}
	s := g.stats
	if gotFaults := [numFaults]uint64{s.TooLong, s.BadCOBS, s.Truncated, s.BadLength, s.BadCRC, s.BadVersion}; gotFaults != faults {
		t.Fatalf("faults %v, reference %v", gotFaults, faults)
	}
	if s.Frames != uint64(len(frames)) || s.Bytes != uint64(len(stream)) {
		t.Fatalf("stats %+v: want %d frames, %d bytes", s, len(frames), len(stream))
	}
}

// noisyStream builds n segments: good frames of every size, each fault class, idle
// delimiters and random noise.
func noisyStream(t testing.TB, rng *rand.Rand, n int) []byte {
	var s []byte
	for range n {
		size := rng.IntN(MaxPayload + 1)
		if rng.IntN(3) > 0 {
			size = rng.IntN(60)
		}
		p := make([]byte, size)
		for i := range p {
			if rng.IntN(3) > 0 {
				p[i] = byte(rng.Uint32())
			}
		}
		typ := MsgType(rng.Uint32())
		raw := refRaw(1, typ, size, p)
		switch rng.IntN(10) {
		case 0: // bit flip
			raw[rng.IntN(len(raw))] ^= 1 << rng.IntN(8)
		case 1: // lost bytes on the wire
			w := refWire(raw)
			k := rng.IntN(len(w) - 1)
			s = append(s, w[:k]...)
			s = append(s, w[k+1+rng.IntN(len(w)-k-1):]...)
			continue
		case 2: // other version
			raw = refRaw(byte(rng.IntN(4)), typ, size, p)
		case 3: // wrong length field
			raw = refRaw(1, typ, size+rng.IntN(5)-2, p)
		case 4: // noise
			noise := make([]byte, rng.IntN(40))
			for i := range noise {
				noise[i] = byte(rng.Uint32())
			}
			s = append(s, noise...)
			continue
		case 5: // idle delimiters
			s = append(s, make([]byte, rng.IntN(3))...)
		}
		s = append(s, refWire(raw)...)
	}
	return s
}

// chunkReader returns its data in reads of random sizes up to max, sometimes empty,
// and io.EOF with the last bytes half of the time.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.rng.IntN(8) == 0 {
		return 0, nil
	}
	n := min(1+r.rng.IntN(r.max), len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.rng.IntN(2) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func randomChunks(b []byte, rng *rand.Rand, max int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(rng.IntN(max+1), len(b)) // may be 0: Feed of nothing
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// loopReader serves the same stream forever without allocating.
type loopReader struct {
	data []byte
	pos  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.pos:])
	r.pos += n
	if r.pos == len(r.data) {
		r.pos = 0
	}
	return n, nil
}

func TestDecoderZeroAllocs(t *testing.T) {
	var stream []byte
	for i := range 50 {
		stream = append(stream, mustFrame(t, TypeReadings, bytes.Repeat([]byte{byte(i)}, 10*i))...)
	}
	d := NewDecoder(&loopReader{data: stream}, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decoder.Next: %v allocs per frame, want 0", allocs)
	}
	p := NewParser(0)
	fn := func(Frame) {}
	allocs = testing.AllocsPerRun(100, func() { p.Feed(stream, fn) })
	if allocs != 0 {
		t.Fatalf("Parser.Feed: %v allocs per call, want 0", allocs)
	}
	dst := make([]byte, 0, 2*MaxFrame)
	payload := bytes.Repeat([]byte{0, 1, 2}, 100)
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := AppendFrame(dst[:0], TypeReadings, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendFrame: %v allocs, want 0", allocs)
	}
}

// TestStatsConcurrent reads Stats while another goroutine decodes; run with -race.
func TestStatsConcurrent(t *testing.T) {
	stream := noisyStream(t, rand.New(rand.NewPCG(11, 12)), 200)
	d := NewDecoder(bytes.NewReader(stream), 0)
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last Stats
		for {
			s := d.Stats()
			if s.Bytes < last.Bytes || s.Frames < last.Frames || s.Faults() < last.Faults() {
				t.Errorf("stats went backwards: %+v after %+v", s, last)
			}
			last = s
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	for _, err := d.Next(); err == nil; _, err = d.Next() {
	}
	close(done)
	wg.Wait()
	if d.Stats().Bytes != uint64(len(stream)) {
		t.Fatalf("Bytes = %d, want %d", d.Stats().Bytes, len(stream))
	}
}

func TestParserEnd(t *testing.T) {
	p := NewParser(0)
	good := mustFrame(t, TypeAck, []byte{0x10, 1})
	var n int
	count := func(Frame) { n++ }
	p.Feed(good[:5], count)
	p.End()
	p.Feed(good, count)
	p.End() // nothing pending: not a fault
	if s := p.Stats(); n != 1 || s.Truncated != 1 || s.Faults() != 1 {
		t.Fatalf("frames %d, stats %+v", n, s)
	}
}

func TestMsgType(t *testing.T) {
	for _, c := range []struct {
		t       MsgType
		s       string
		known   bool
		fromHub bool
	}{
		{TypeHello, "Hello", true, false},
		{TypeInventory, "Inventory", true, false},
		{TypeAck, "Ack", true, true},
		{TypeTimeSync, "TimeSync", true, true},
		{0, "MsgType(0x00)", false, false},
		{0x7e, "MsgType(0x7e)", false, false},
		{0xfe, "MsgType(0xfe)", false, true},
	} {
		if c.t.String() != c.s || c.t.Known() != c.known || c.t.FromHub() != c.fromHub {
			t.Errorf("%#02x: %q %v %v, want %q %v %v", uint8(c.t), c.t.String(), c.t.Known(), c.t.FromHub(), c.s, c.known, c.fromHub)
		}
	}
}
