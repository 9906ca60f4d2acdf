package frame

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// vectorWires returns the wire bytes of every vector file, for fuzz seeds.
func vectorWires(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s: %v", vectorDir, err)
	}
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseVector(t, f, data).wire)
	}
	return out
}

// FuzzDecoder decodes arbitrary input split into reads of random sizes and checks:
// no panic; the same frames, faults and counts whatever the split, by Decoder and by
// Parser; agreement with the plain reference decoder; buffers that never grow; and every
// decoded frame re-encoding to an identical frame.
func FuzzDecoder(f *testing.F) {
	wires := vectorWires(f)
	for i, w := range wires {
		f.Add(w, uint64(i), uint8(i))
	}
	f.Add(bytes.Join(wires, nil), uint64(7), uint8(0))
	f.Add(noisyStream(f, rand.New(rand.NewPCG(1, 1)), 20), uint64(8), uint8(3))
	f.Add([]byte{}, uint64(0), uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint8) {
		maxFrame := []int{0, 6, 32, 100, 300}[limit%5]
		whole := decodeAll(bytes.NewReader(data), maxFrame)
		if whole.err != io.EOF {
			t.Fatalf("err = %v, want io.EOF", whole.err)
		}
		checkAgainstReference(t, data, maxFrame, whole)

		rng := rand.New(rand.NewPCG(seed, ^seed))
		compareRuns(t, "one byte per read", whole, decodeAll(&chunkReader{data: data, rng: rng, max: 1}, maxFrame))
		compareRuns(t, "short reads", whole, decodeAll(&chunkReader{data: data, rng: rng, max: 1 + rng.IntN(80)}, maxFrame))
		compareRuns(t, "parser", whole, feedAll(randomChunks(data, rng, 1+rng.IntN(80)), maxFrame))

		d := NewDecoder(&chunkReader{data: data, rng: rng, max: 1 + rng.IntN(2000)}, maxFrame)
		for {
			fr, err := d.Next()
			if err != nil {
				break
			}
			if len(fr.Payload) > d.c.maxFrame-HeaderLen-CRCLen || fr.Version != Version {
				t.Fatalf("frame %v exceeds the limit %d or has a bad version", fr, d.c.maxFrame)
			}
			if len(fr.Payload) > MaxPayload {
				continue // allowed by this receiver's limit, but AppendFrame keeps to the spec
			}
			re, err := AppendFrame(nil, fr.Type, fr.Payload)
			if err != nil {
				t.Fatal(err)
			}
			var back []Frame
			NewParser(maxFrame).Feed(re, func(g Frame) { back = append(back, g) })
			if len(back) != 1 || back[0].Type != fr.Type || !bytes.Equal(back[0].Payload, fr.Payload) {
				t.Fatalf("frame %v does not survive re-encoding: %v", fr, back)
			}
		}
		if cap(d.c.acc) != d.c.maxEnc || len(d.buf) != readBufSize {
			t.Fatalf("buffers grew: acc cap %d (limit %d), read buffer %d", cap(d.c.acc), d.c.maxEnc, len(d.buf))
		}
	})
}

// FuzzAppendFrame checks the encoder against the reference for arbitrary payloads and
// that the decoder returns exactly what was encoded.
func FuzzAppendFrame(f *testing.F) {
	for _, c := range cobsKnown {
		f.Add(c.dec, uint8(TypeReadings))
	}
	f.Fuzz(func(t *testing.T, payload []byte, typ uint8) {
		got, err := AppendFrame(nil, MsgType(typ), payload)
		if len(payload) > MaxPayload {
			if err == nil {
				t.Fatal("oversized payload accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if want := refWire(refRaw(1, MsgType(typ), len(payload), payload)); !bytes.Equal(got, want) {
			t.Fatalf("AppendFrame differs from reference:\n got % x\nwant % x", got, want)
		}
		if bytes.IndexByte(got, 0) != len(got)-1 || len(got)-1 > MaxEncodedLen(len(payload)+HeaderLen+CRCLen) {
			t.Fatalf("bad wire form: % x", got)
		}
		fr, err := NewDecoder(bytes.NewReader(got), 0).Next()
		if err != nil || fr.Type != MsgType(typ) || !bytes.Equal(fr.Payload, payload) {
			t.Fatalf("decoded %v, %v", fr, err)
		}
	})
}
