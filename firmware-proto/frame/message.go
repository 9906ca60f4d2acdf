package frame

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// NewMessage returns a new, empty message of the type frames of type t carry, or
// ErrUnknownType.
func NewMessage(t MsgType) (proto.Message, error) {
	switch t {
	case TypeHello:
		return new(fwpb.Hello), nil
	case TypeReadings:
		return new(fwpb.Readings), nil
	case TypeEvents:
		return new(fwpb.Events), nil
	case TypeInventory:
		return new(fwpb.Inventory), nil
	case TypeAck:
		return new(fwpb.Ack), nil
	case TypeNack:
		return new(fwpb.Nack), nil
	case TypeTimeSync:
		return new(fwpb.TimeSync), nil
	}
	return nil, fmt.Errorf("frame: %w %v", ErrUnknownType, t)
}

// TypeOf returns the frame type that carries m, or ErrUnknownType if m is not one of the
// fwpb messages that travel in frames.
func TypeOf(m proto.Message) (MsgType, error) {
	switch m.(type) {
	case *fwpb.Hello:
		return TypeHello, nil
	case *fwpb.Readings:
		return TypeReadings, nil
	case *fwpb.Events:
		return TypeEvents, nil
	case *fwpb.Inventory:
		return TypeInventory, nil
	case *fwpb.Ack:
		return TypeAck, nil
	case *fwpb.Nack:
		return TypeNack, nil
	case *fwpb.TimeSync:
		return TypeTimeSync, nil
	}
	return 0, fmt.Errorf("frame: %w: %T is not carried in frames", ErrUnknownType, m)
}

// AppendMessage marshals m and appends it to dst as a frame of m's type (see
// AppendFrame). It fails with ErrUnknownType for a message not carried in frames and
// with ErrTooLong when the encoded message exceeds MaxPayload, leaving dst as it was. It
// does not allocate when dst has room for the frame plus MaxEncodedLen of it.
func AppendMessage(dst []byte, m proto.Message) ([]byte, error) {
	t, err := TypeOf(m)
	if err != nil {
		return dst, err
	}
	size := proto.Size(m)
	if size > MaxPayload {
		return dst, fmt.Errorf("frame: %w: %d-byte %v message (at most %d)", ErrTooLong, size, t, MaxPayload)
	}
	// Build the raw frame in dst's spare capacity beyond the space its encoding can take,
	// then encode it into that space: no scratch buffer, no overlap.
	n := HeaderLen + size + CRCLen
	enc := MaxEncodedLen(n) + 1
	base := len(dst)
	dst = slices.Grow(dst, enc+n)
	raw := dst[base+enc : base+enc : base+enc+n]
	raw = append(raw, Version, byte(t), byte(size>>8), byte(size))
	raw, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(raw, m)
	if err != nil {
		return dst[:base], fmt.Errorf("frame: marshal %v: %w", t, err)
	}
	if len(raw) != HeaderLen+size {
		return dst[:base], fmt.Errorf("frame: marshal %v: size changed from %d to %d bytes", t, size, len(raw)-HeaderLen)
	}
	crc := crc16Update(crc16Init, raw)
	raw = append(raw, byte(crc>>8), byte(crc))
	e := newCOBSEncoder(dst[:base])
	e.write(raw)
	return append(e.finish(), Delimiter), nil
}

// Unmarshal decodes f's payload into m, which must be the message for f.Type (else
// ErrWrongType). Fields m does not know are dropped. A payload that is not valid
// protobuf gives ErrBadPayload.
func (f Frame) Unmarshal(m proto.Message) error {
	t, err := TypeOf(m)
	if err != nil {
		return err
	}
	if t != f.Type {
		return fmt.Errorf("frame: %w: %v frame into %T", ErrWrongType, f.Type, m)
	}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(f.Payload, m); err != nil {
		return fmt.Errorf("frame: %w: %v: %v", ErrBadPayload, f.Type, err)
	}
	return nil
}

// Decode returns f's payload as a new message of f.Type's type: ErrUnknownType for a
// type this version does not know, ErrBadPayload for a payload that is not valid
// protobuf.
func (f Frame) Decode() (proto.Message, error) {
	m, err := NewMessage(f.Type)
	if err != nil {
		return nil, err
	}
	if err := f.Unmarshal(m); err != nil {
		return nil, err
	}
	return m, nil
}
