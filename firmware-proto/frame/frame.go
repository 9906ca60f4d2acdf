package frame

import (
	"bytes"
	"fmt"
	"slices"
)

// Framing constants of version 1 (SPEC.md, "Frame layout").
const (
	// Version is the framing version this package reads and writes (byte 0 of a frame).
	Version = 1

	// Delimiter ends every frame on the wire. COBS guarantees it occurs nowhere else.
	Delimiter = 0x00

	// HeaderLen is the size of the header: version, type and a big-endian uint16 length.
	HeaderLen = 4
	// CRCLen is the size of the big-endian CRC-16/CCITT-FALSE that ends a frame.
	CRCLen = 2

	// MaxFrame is the largest decoded frame, header and CRC included, that a sender may
	// send and that every receiver must accept.
	MaxFrame = 512
	// MaxPayload is the largest payload of a frame of MaxFrame bytes.
	MaxPayload = MaxFrame - HeaderLen - CRCLen

	// MaxHubFrame is the largest decoded frame a hub sends to a device, so that a device
	// can receive with a buffer of MaxEncodedLen(MaxHubFrame)+1 bytes.
	MaxHubFrame = 80

	// maxFrameLimit is the largest frame the 16-bit length field can describe.
	maxFrameLimit = HeaderLen + 0xFFFF + CRCLen
)

// MaxEncodedLen returns the largest number of bytes COBS can turn n decoded bytes into,
// delimiter excluded: one code byte per started block of 254 bytes.
func MaxEncodedLen(n int) int { return n + n/254 + 1 }

// MsgType is the message type code in byte 1 of a frame. Codes below 0x80 travel from
// device to hub, codes from 0x80 up from hub to device. The values equal the
// fwpb.MsgType enum of hearth_fw.proto.
type MsgType uint8

// Message types of version 1.
const (
	TypeHello     MsgType = 0x01 // fwpb.Hello, device → hub
	TypeReadings  MsgType = 0x02 // fwpb.Readings, device → hub
	TypeEvents    MsgType = 0x03 // fwpb.Events, device → hub
	TypeInventory MsgType = 0x04 // fwpb.Inventory, device → hub
	TypeAck       MsgType = 0x81 // fwpb.Ack, hub → device
	TypeNack      MsgType = 0x82 // fwpb.Nack, hub → device
	TypeTimeSync  MsgType = 0x83 // fwpb.TimeSync, hub → device
)

var typeNames = map[MsgType]string{
	TypeHello: "Hello", TypeReadings: "Readings", TypeEvents: "Events", TypeInventory: "Inventory",
	TypeAck: "Ack", TypeNack: "Nack", TypeTimeSync: "TimeSync",
}

// String returns the type's message name, or MsgType(0xNN) for an unknown type.
func (t MsgType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("MsgType(0x%02x)", uint8(t))
}

// Known reports whether t is a message type of this version.
func (t MsgType) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// FromHub reports whether frames of type t travel from the hub to a device.
func (t MsgType) FromHub() bool { return t&0x80 != 0 }

// Frame is one intact frame: its CRC matched and its version is Version.
type Frame struct {
	Version uint8
	Type    MsgType
	// Payload is the protobuf-encoded message. It aliases the decoder's buffer and is
	// valid only until the next call to Next (or until the Feed callback returns).
	Payload []byte
}

// AppendFrame appends to dst the wire form of a frame of type typ carrying payload: the
// COBS encoding of version, type, length, payload and CRC, then the Delimiter. It
// allocates only when dst lacks capacity. It fails with ErrTooLong, leaving dst as it
// was, if payload is longer than MaxPayload.
func AppendFrame(dst []byte, typ MsgType, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("frame: %w: %d-byte %v payload (at most %d)", ErrTooLong, len(payload), typ, MaxPayload)
	}
	n := HeaderLen + len(payload) + CRCLen
	dst = slices.Grow(dst, MaxEncodedLen(n)+1)
	hdr := [HeaderLen]byte{Version, byte(typ), byte(len(payload) >> 8), byte(len(payload))}
	crc := crc16Update(crc16Init, hdr[:])
	crc = crc16Update(crc, payload)
	sum := [CRCLen]byte{byte(crc >> 8), byte(crc)}

	e := newCOBSEncoder(dst)
	e.write(hdr[:])
	e.write(payload)
	e.write(sum[:])
	return append(e.finish(), Delimiter), nil
}

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.
const (
	crc16Poly = 0x1021
	crc16Init = 0xFFFF
)

// crc16Tables holds the slicing-by-8 tables: crc16Tables[k][b] is the CRC register,
// from zero, after byte b followed by k zero bytes. Table 0 is the classic byte table.
var crc16Tables = func() (t [8][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ crc16Poly
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < len(t); k++ {
		for i := range t[k] {
			c := t[k-1][i]
			t[k][i] = c<<8 ^ t[0][c>>8]
		}
	}
	return t
}()

// crc16Update continues a CRC-16/CCITT-FALSE computation over p, eight bytes at a time:
// the register is folded into the first two bytes of each group, and each byte's
// contribution is looked up according to how many bytes follow it in the group.
func crc16Update(crc uint16, p []byte) uint16 {
	t := &crc16Tables
	for len(p) >= 8 {
		crc = t[7][p[0]^byte(crc>>8)] ^ t[6][p[1]^byte(crc)] ^
			t[5][p[2]] ^ t[4][p[3]] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]]
		p = p[8:]
	}
	for _, b := range p {
		crc = crc<<8 ^ t[0][byte(crc>>8)^b]
	}
	return crc
}

// cobsEncoder appends the COBS encoding of the bytes written to it. Blocks never span
// more than 254 data bytes; a final full block is not followed by an empty one, so the
// output is the canonical encoding (Cheshire and Baker, 1999).
type cobsEncoder struct {
	dst  []byte
	ci   int  // index in dst of the current block's code byte
	code byte // 1 + data bytes in the current block
	full bool // the last block was closed at 254 bytes; the next byte opens a new one
}

func newCOBSEncoder(dst []byte) cobsEncoder {
	return cobsEncoder{dst: append(dst, 0), ci: len(dst), code: 1}
}

func (e *cobsEncoder) write(p []byte) {
	for len(p) > 0 {
		if e.full {
			e.ci, e.code, e.full = len(e.dst), 1, false
			e.dst = append(e.dst, 0)
		}
		run := bytes.IndexByte(p, 0)
		if run < 0 {
			run = len(p)
		}
		take := min(run, 0xFF-int(e.code))
		e.dst = append(e.dst, p[:take]...)
		e.code += byte(take)
		p = p[take:]
		if e.code == 0xFF {
			e.dst[e.ci] = 0xFF
			e.full = true
			continue
		}
		if len(p) > 0 { // p[0] == 0: close the block, the zero is implied
			e.dst[e.ci] = e.code
			e.ci, e.code = len(e.dst), 1
			e.dst = append(e.dst, 0)
			p = p[1:]
		}
	}
}

func (e *cobsEncoder) finish() []byte {
	if !e.full {
		e.dst[e.ci] = e.code
	}
	return e.dst
}

// cobsDecode decodes src into dst and returns the decoded length. dst must have room
// for len(src) bytes; it may be src itself (decoding in place never overtakes reading).
// It fails with ErrBadCOBS when a block runs past the end of src or a code byte is 0.
func cobsDecode(dst, src []byte) (int, error) {
	n, i := 0, 0
	for i < len(src) {
		code := int(src[i])
		i++
		if code == 0 || i+code-1 > len(src) {
			return n, ErrBadCOBS
		}
		n += copy(dst[n:], src[i:i+code-1])
		i += code - 1
		if code != 0xFF && i < len(src) {
			dst[n] = 0
			n++
		}
	}
	return n, nil
}
