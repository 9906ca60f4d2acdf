package frame

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// allTypes are the message types of version 1.
var allTypes = []MsgType{TypeHello, TypeReadings, TypeEvents, TypeInventory, TypeAck, TypeNack, TypeTimeSync}

// TestTypesMatchProto checks the Go type table against the MsgType enum of
// hearth_fw.proto, which is what firmware teams generate their C from: same codes, and
// each code's enum name matches the message it carries.
func TestTypesMatchProto(t *testing.T) {
	enum := fwpb.MsgType(0).Descriptor().Values()
	if enum.Len() != len(allTypes)+1 {
		t.Fatalf("proto MsgType has %d values, Go has %d types (+ UNSPECIFIED)", enum.Len(), len(allTypes))
	}
	if enum.ByNumber(0) == nil {
		t.Fatal("proto MsgType lacks 0 = UNSPECIFIED")
	}
	for _, typ := range allTypes {
		v := enum.ByNumber(protoreflect.EnumNumber(typ))
		if v == nil {
			t.Errorf("%v (%#02x): not in proto MsgType", typ, uint8(typ))
			continue
		}
		m, err := NewMessage(typ)
		if err != nil {
			t.Fatal(err)
		}
		msgName := string(m.ProtoReflect().Descriptor().Name())
		if want := "MSG_TYPE_" + screamingSnake(msgName); string(v.Name()) != want {
			t.Errorf("%#02x: proto calls it %s, Go carries %s (want %s)", uint8(typ), v.Name(), msgName, want)
		}
		if typ.String() != msgName {
			t.Errorf("%#02x: String() = %q, want %q", uint8(typ), typ.String(), msgName)
		}
		if !typ.Known() {
			t.Errorf("%v not Known", typ)
		}
		back, err := TypeOf(m)
		if err != nil || back != typ {
			t.Errorf("TypeOf(NewMessage(%v)) = %v, %v", typ, back, err)
		}
	}
	if _, err := NewMessage(0x7e); !errors.Is(err, ErrUnknownType) {
		t.Errorf("NewMessage(0x7e) err = %v", err)
	}
	if _, err := TypeOf(&fwpb.Reading{}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("TypeOf(Reading) err = %v", err)
	}
}

func screamingSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func sampleReadings(n int) *fwpb.Readings {
	m := &fwpb.Readings{SentMonoMs: 3_605_000}
	for i := range n {
		m.Readings = append(m.Readings, &fwpb.Reading{
			Seq:    uint64(1000 + i),
			MonoMs: uint64(3_600_000 + 250*i),
			Signal: fwpb.Signal(1 + i%12),
			Value:  4.5 + float64(i),
		})
	}
	return m
}

func TestAppendMessage(t *testing.T) {
	msgs := []proto.Message{
		&fwpb.Hello{DeviceId: "fridge-1", Kind: "fridge", BootId: 42, Capabilities: []fwpb.Capability{fwpb.Capability_CAPABILITY_DOOR}},
		sampleReadings(5),
		&fwpb.Ack{BootId: math.MaxUint64, Seq: 7},
		&fwpb.Ack{}, // empty payload
		&fwpb.TimeSync{UnixMs: 1_767_225_600_000},
	}
	for _, m := range msgs {
		payload, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		typ, _ := TypeOf(m)
		want, err := AppendFrame([]byte("x"), typ, payload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendMessage([]byte("x"), m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%T: AppendMessage = % x, %v; want % x", m, got, err, want)
		}
		// And back.
		var f Frame
		n := 0
		NewParser(0).Feed(got[1:], func(fr Frame) { f = fr; n++ })
		if n != 1 {
			t.Fatalf("%T: %d frames decoded", m, n)
		}
		back, err := f.Decode()
		if err != nil || !proto.Equal(back, m) {
			t.Fatalf("%T: Decode = %v, %v; want %v", m, back, err, m)
		}
	}
}

func TestAppendMessageErrors(t *testing.T) {
	dst := []byte{9}
	if got, err := AppendMessage(dst, sampleReadings(40)); !errors.Is(err, ErrTooLong) || !bytes.Equal(got, dst) {
		t.Errorf("oversized: %x, %v; want dst unchanged and ErrTooLong", got, err)
	}
	if got, err := AppendMessage(dst, &fwpb.Reading{}); !errors.Is(err, ErrUnknownType) || !bytes.Equal(got, dst) {
		t.Errorf("Reading: %x, %v; want dst unchanged and ErrUnknownType", got, err)
	}
}

// TestReadingsPerFrame checks SPEC.md §5: about 23 compact readings (seq, monotonic
// time, signal, value) or about 16 with wall time and units fit in one frame.
func TestReadingsPerFrame(t *testing.T) {
	fit := func(batch func(int) *fwpb.Readings) int {
		n := 0
		for proto.Size(batch(n+1)) <= MaxPayload {
			n++
		}
		return n
	}
	if n := fit(sampleReadings); n != 23 {
		t.Errorf("%d compact readings fit in a frame, SPEC.md says 23", n)
	}
	if n := fit(typicalReadings); n != 16 {
		t.Errorf("%d readings with wall time fit in a frame, SPEC.md says 16", n)
	}
}

func TestAppendMessageZeroAllocs(t *testing.T) {
	m := sampleReadings(8)
	dst := make([]byte, 0, 2*MaxFrame)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := AppendMessage(dst[:0], m); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendMessage: %v allocs, want 0", allocs)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	f := Frame{Version: 1, Type: TypeReadings, Payload: []byte("not protobuf")}
	if err := f.Unmarshal(new(fwpb.Readings)); !errors.Is(err, ErrBadPayload) {
		t.Errorf("garbage: err = %v, want ErrBadPayload", err)
	}
	if _, err := f.Decode(); !errors.Is(err, ErrBadPayload) {
		t.Errorf("garbage Decode: err = %v, want ErrBadPayload", err)
	}
	if err := (Frame{Version: 1, Type: TypeAck}).Unmarshal(new(fwpb.Readings)); !errors.Is(err, ErrWrongType) {
		t.Errorf("wrong type: err = %v, want ErrWrongType", err)
	}
	if _, err := (Frame{Version: 1, Type: 0x7e}).Decode(); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: err = %v, want ErrUnknownType", err)
	}
}

// TestUnknownFieldsIgnored: a newer device may add fields; this hub must decode the
// rest and drop them.
func TestUnknownFieldsIgnored(t *testing.T) {
	m := &fwpb.Ack{BootId: 5, Seq: 6}
	p, _ := proto.Marshal(m)
	p = protowire.AppendTag(p, 99, protowire.BytesType)
	p = protowire.AppendBytes(p, []byte("from the future"))
	p = protowire.AppendTag(p, 100, protowire.VarintType)
	p = protowire.AppendVarint(p, 1)
	got := new(fwpb.Ack)
	if err := (Frame{Version: 1, Type: TypeAck, Payload: p}).Unmarshal(got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) || len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("got %v (unknown %x), want %v", got, got.ProtoReflect().GetUnknown(), m)
	}
}

// TestHubFramesFit checks SPEC.md's promise that every hub → device frame is at most
// MaxHubFrame bytes decoded, with every field at its largest.
func TestHubFramesFit(t *testing.T) {
	biggest := []proto.Message{
		&fwpb.Ack{BootId: math.MaxUint64, Seq: math.MaxUint64},
		&fwpb.Nack{
			Reason: fwpb.NackReason(127), RefType: 255, BootId: math.MaxUint64, Seq: math.MaxUint64,
			RetryAfterMs: math.MaxUint32, RefVersion: 255, Detail: strings.Repeat("x", 24),
		},
		&fwpb.TimeSync{UnixMs: math.MinInt64},
	}
	for _, m := range biggest {
		if n := HeaderLen + proto.Size(m) + CRCLen; n > MaxHubFrame {
			t.Errorf("%T: %d-byte frame, more than MaxHubFrame %d", m, n, MaxHubFrame)
		}
	}
}
