package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// This file holds a plain reference implementation of the framing, written straight
// from SPEC.md without regard for speed, and checks the codec against it.

// refCRC16 computes CRC-16/CCITT-FALSE one bit at a time, as a shift register would:
// poly 0x1021, init 0xFFFF, bits fed most significant first, no final XOR.
func refCRC16(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		for i := 7; i >= 0; i-- {
			in := (b>>i)&1 == 1
			top := crc&0x8000 != 0
			crc <<= 1
			if in != top {
				crc ^= 0x1021
			}
		}
	}
	return crc
}

// specCRC16 is the table-free, byte-at-a-time form SPEC.md recommends for small MCUs.
func specCRC16(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		x := byte(crc>>8) ^ b
		x ^= x >> 4
		crc = crc<<8 ^ uint16(x)<<12 ^ uint16(x)<<5 ^ uint16(x)
	}
	return crc
}

// refCOBSEncode is COBS as Cheshire and Baker define it: split the data at each zero
// into blocks of at most 254 non-zero bytes; each block is written as 1+len(block)
// followed by the block; a block of 254 bytes implies no zero after it, and no empty
// block follows a 254-byte block that ends the data.
func refCOBSEncode(src []byte) []byte {
	var out, block []byte
	for i := 0; i < len(src); i++ {
		if src[i] == 0 {
			out = append(out, byte(len(block)+1))
			out = append(out, block...)
			block = nil
			continue
		}
		block = append(block, src[i])
		if len(block) == 254 {
			out = append(out, 0xFF)
			out = append(out, block...)
			block = nil
			if i == len(src)-1 {
				return out
			}
		}
	}
	out = append(out, byte(len(block)+1))
	return append(out, block...)
}

// refCOBSDecode undoes refCOBSEncode; ok is false if a block runs past the end.
func refCOBSDecode(enc []byte) (out []byte, ok bool) {
	out = []byte{}
	for i := 0; i < len(enc); {
		code := int(enc[i])
		if code == 0 || i+code > len(enc) {
			return nil, false
		}
		out = append(out, enc[i+1:i+code]...)
		i += code
		if code < 0xFF && i < len(enc) {
			out = append(out, 0)
		}
	}
	return out, true
}

// refRaw builds a decoded frame with the given header fields and a correct CRC.
func refRaw(version byte, typ MsgType, declaredLen int, payload []byte) []byte {
	raw := []byte{version, byte(typ), byte(declaredLen >> 8), byte(declaredLen)}
	raw = append(raw, payload...)
	crc := refCRC16(raw)
	return append(raw, byte(crc>>8), byte(crc))
}

// refWire COBS-encodes a decoded frame and appends the delimiter.
func refWire(raw []byte) []byte { return append(refCOBSEncode(raw), 0) }

// refFault names the fault classes in the reference decoder.
const refOK = -1

// refDecodeSegment classifies one segment (the bytes between two delimiters, not empty)
// by the checks of SPEC.md "Decoding", in their order.
func refDecodeSegment(seg []byte, maxFrame int) (Frame, int) {
	if len(seg) > MaxEncodedLen(maxFrame) {
		return Frame{}, fTooLong
	}
	body, ok := refCOBSDecode(seg)
	switch {
	case !ok:
		return Frame{}, fBadCOBS
	case len(body) > maxFrame:
		return Frame{}, fTooLong
	case len(body) < 6:
		return Frame{}, fTruncated
	}
	declared := int(body[2])*256 + int(body[3])
	switch {
	case len(body) < 4+declared+2:
		return Frame{}, fTruncated
	case len(body) > 4+declared+2:
		return Frame{}, fBadLength
	}
	if refCRC16(body[:len(body)-2]) != uint16(body[len(body)-2])*256+uint16(body[len(body)-1]) {
		return Frame{}, fBadCRC
	}
	if body[0] != 1 {
		return Frame{}, fBadVersion
	}
	return Frame{Version: body[0], Type: MsgType(body[1]), Payload: body[4 : 4+declared]}, refOK
}

// refDecodeStream decodes a whole stream the slow way: split at every zero byte.
func refDecodeStream(stream []byte, maxFrame int) ([]Frame, [numFaults]uint64) {
	var frames []Frame
	var faults [numFaults]uint64
	segs := bytes.Split(stream, []byte{0})
	for i, seg := range segs {
		if len(seg) == 0 {
			continue
		}
		if i == len(segs)-1 { // no delimiter after it: the stream ended mid-frame
			if len(seg) > MaxEncodedLen(maxFrame) {
				faults[fTooLong]++
			} else {
				faults[fTruncated]++
			}
			continue
		}
		f, class := refDecodeSegment(seg, maxFrame)
		if class != refOK {
			faults[class]++
			continue
		}
		frames = append(frames, f)
	}
	return frames, faults
}

func TestCRC16CheckValue(t *testing.T) {
	// The catalogue check value of CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740).
	check := []byte("123456789")
	for name, f := range map[string]func([]byte) uint16{
		"table":     func(p []byte) uint16 { return crc16Update(crc16Init, p) },
		"bitwise":   refCRC16,
		"tablefree": specCRC16,
	} {
		if got := f(check); got != 0x29B1 {
			t.Errorf("%s CRC of %q = %#04x, want 0x29b1", name, check, got)
		}
	}
	// Residue: the CRC over data followed by its CRC (big-endian) is 0.
	withCRC := append(append([]byte(nil), check...), 0x29, 0xB1)
	if got := crc16Update(crc16Init, withCRC); got != 0 {
		t.Errorf("residue = %#04x, want 0", got)
	}
}

func TestCRC16Implementations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 600 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want := refCRC16(p)
		if got := crc16Update(crc16Init, p); got != want {
			t.Fatalf("len %d: table CRC %#04x, bitwise %#04x", n, got, want)
		}
		if got := specCRC16(p); got != want {
			t.Fatalf("len %d: table-free CRC %#04x, bitwise %#04x", n, got, want)
		}
		// Incremental use gives the same result.
		if n > 0 {
			k := rng.IntN(n)
			if got := crc16Update(crc16Update(crc16Init, p[:k]), p[k:]); got != want {
				t.Fatalf("len %d split %d: %#04x, want %#04x", n, k, got, want)
			}
		}
	}
}

// TestCRC16HammingDistance proves the claim in SPEC.md that CRC-16/CCITT-FALSE detects
// every 1-, 2- and 3-bit error in a frame of MaxFrame bytes (Hamming distance 4). A CRC
// is linear, so an error pattern goes undetected exactly when the XOR of the syndromes
// of its flipped bits is zero; the syndrome of a flipped bit depends only on how far it
// is from the end of the frame.
func TestCRC16HammingDistance(t *testing.T) {
	const bits = MaxFrame * 8
	zero := make([]byte, MaxFrame)
	base := crc16Update(crc16Init, zero)
	syn := make([]uint16, bits)
	where := make(map[uint16]int, bits) // syndrome → bit position
	for i := range syn {
		p := make([]byte, MaxFrame)
		p[i/8] ^= 0x80 >> (i % 8)
		syn[i] = crc16Update(crc16Init, p) ^ base
		if syn[i] == 0 {
			t.Fatalf("single-bit error at bit %d undetected", i)
		}
		if j, dup := where[syn[i]]; dup {
			t.Fatalf("two-bit error at bits %d and %d undetected", j, i)
		}
		where[syn[i]] = i
	}
	for i := range syn {
		for j := i + 1; j < bits; j++ {
			if k, ok := where[syn[i]^syn[j]]; ok && k != i && k != j {
				t.Fatalf("three-bit error at bits %d, %d, %d undetected", i, j, k)
			}
		}
	}
	// And an odd number of flipped bits is always detected: x+1 divides 0x11021.
	if parity(0x11021) != 0 {
		t.Fatal("generator polynomial has odd weight")
	}
}

func parity(x uint32) int {
	p := 0
	for ; x != 0; x &= x - 1 {
		p ^= 1
	}
	return p
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(from, to int) []byte {
	var b []byte
	for i := from; i <= to; i++ {
		b = append(b, byte(i))
	}
	return b
}

// cobsKnown are the examples of the COBS article on Wikipedia, plus edge cases.
var cobsKnown = []struct {
	name     string
	dec, enc []byte
}{
	{"empty", []byte{}, []byte{0x01}},
	{"one zero", []byte{0x00}, []byte{0x01, 0x01}},
	{"two zeros", []byte{0x00, 0x00}, []byte{0x01, 0x01, 0x01}},
	{"zero inside", []byte{0x11, 0x22, 0x00, 0x33}, []byte{0x03, 0x11, 0x22, 0x02, 0x33}},
	{"no zero", []byte{0x11, 0x22, 0x33, 0x44}, []byte{0x05, 0x11, 0x22, 0x33, 0x44}},
	{"trailing zeros", []byte{0x11, 0x00, 0x00, 0x00}, []byte{0x02, 0x11, 0x01, 0x01, 0x01}},
	{"254 non-zero", seq(0x01, 0xFE), append([]byte{0xFF}, seq(0x01, 0xFE)...)},
	{"zero then 254", seq(0x00, 0xFE), append([]byte{0x01, 0xFF}, seq(0x01, 0xFE)...)},
	{"255 non-zero", seq(0x01, 0xFF), append(append([]byte{0xFF}, seq(0x01, 0xFE)...), 0x02, 0xFF)},
	{"254 then zero", append(seq(0x02, 0xFF), 0x00), append(append([]byte{0xFF}, seq(0x02, 0xFF)...), 0x01, 0x01)},
	{"253, zero, one", append(seq(0x03, 0xFF), 0x00, 0x01), append(append([]byte{0xFE}, seq(0x03, 0xFF)...), 0x02, 0x01)},
}

func TestCOBSKnown(t *testing.T) {
	for _, c := range cobsKnown {
		if got := refCOBSEncode(c.dec); !bytes.Equal(got, c.enc) {
			t.Errorf("%s: reference encode = % x, want % x", c.name, got, c.enc)
		}
		e := newCOBSEncoder(nil)
		e.write(c.dec)
		if got := e.finish(); !bytes.Equal(got, c.enc) {
			t.Errorf("%s: encode = % x, want % x", c.name, got, c.enc)
		}
		buf := append([]byte(nil), c.enc...)
		n, err := cobsDecode(buf, buf)
		if err != nil || !bytes.Equal(buf[:n], c.dec) {
			t.Errorf("%s: decode in place = % x, %v; want % x", c.name, buf[:n], err, c.dec)
		}
	}
}

// TestCOBSAgainstReference encodes data rich in zeros and long runs, written to the
// encoder in random pieces, and compares with the reference both ways.
func TestCOBSAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		n := rng.IntN(800)
		if iter < 600 {
			n = iter
		}
		p := make([]byte, n)
		zeroRate := []int{0, 2, 50, 300, 1000}[iter%5]
		for i := range p {
			p[i] = byte(1 + rng.IntN(255))
			if zeroRate > 0 && rng.IntN(zeroRate) == 0 {
				p[i] = 0
			}
		}
		want := refCOBSEncode(p)
		e := newCOBSEncoder([]byte{0xAA})
		for rest := p; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			e.write(rest[:k])
			rest = rest[k:]
		}
		got := e.finish()
		if got[0] != 0xAA || !bytes.Equal(got[1:], want) {
			t.Fatalf("len %d: encode differs from reference:\n got % x\nwant % x", n, got[1:], want)
		}
		if len(want) > MaxEncodedLen(n) || bytes.IndexByte(want, 0) >= 0 {
			t.Fatalf("len %d: encoding of %d bytes exceeds bound or holds a zero", n, len(want))
		}
		dec, ok := refCOBSDecode(want)
		if !ok || !bytes.Equal(dec, p) {
			t.Fatalf("len %d: reference round trip failed", n)
		}
		buf := append([]byte(nil), want...)
		m, err := cobsDecode(buf, buf)
		if err != nil || !bytes.Equal(buf[:m], p) {
			t.Fatalf("len %d: decode = %v", n, err)
		}
	}
}

func TestAppendFrameAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 0; n <= MaxPayload; n++ {
		p := make([]byte, n)
		for i := range p {
			if rng.IntN(4) != 0 {
				p[i] = byte(rng.Uint32())
			}
		}
		typ := MsgType(rng.Uint32())
		prefix := []byte("prefix")
		got, err := AppendFrame(prefix, typ, p)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte("prefix"), refWire(refRaw(1, typ, n, p))...)
		if !bytes.Equal(got, want) {
			t.Fatalf("payload %d bytes: AppendFrame differs from reference:\n got % x\nwant % x", n, got, want)
		}
	}
}

func TestAppendFrameTooLong(t *testing.T) {
	dst := []byte{1, 2, 3}
	got, err := AppendFrame(dst, TypeReadings, make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if !bytes.Equal(got, dst) {
		t.Fatalf("dst changed on error: % x", got)
	}
}
