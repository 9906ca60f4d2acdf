package frame_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// A device sends a Hello and a batch of readings; line noise hits the wire between them.
// The hub's Decoder returns both messages, and counts the noise.
func Example() {
	var wire []byte
	wire, _ = frame.AppendMessage(wire, &fwpb.Hello{
		DeviceId: "fridge-7f3a", Kind: "fridge", BootId: 0x1122334455667788,
	})
	wire = append(wire, 0x5a, 0xa5, 0x13, 0x00) // noise, ended by a delimiter
	wire, _ = frame.AppendMessage(wire, &fwpb.Readings{Readings: []*fwpb.Reading{
		{Seq: 1, MonoMs: 3_600_000, Signal: fwpb.Signal_SIGNAL_TEMPERATURE, Value: 4.5},
		{Seq: 2, MonoMs: 3_601_250, Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1},
	}})

	d := frame.NewDecoder(bytes.NewReader(wire), frame.MaxFrame)
	d.OnFault = func(err *frame.FaultError) { fmt.Println("dropped:", err) }
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		msg, err := f.Decode()
		if err != nil {
			fmt.Println("nack:", err) // the hub would answer with a Nack
			continue
		}
		switch m := msg.(type) {
		case *fwpb.Hello:
			fmt.Printf("hello from %s (%s), boot %#x\n", m.GetDeviceId(), m.GetKind(), m.GetBootId())
		case *fwpb.Readings:
			for _, r := range m.GetReadings() {
				fmt.Printf("reading seq %d: %v = %v\n", r.GetSeq(), r.GetSignal(), r.GetValue())
			}
		}
	}
	s := d.Stats()
	fmt.Printf("%d frames, %d dropped (%d bad COBS)\n", s.Frames, s.Faults(), s.BadCOBS)
	// Output:
	// hello from fridge-7f3a (fridge), boot 0x1122334455667788
	// dropped: frame at offset 38 (3 bytes): bad COBS encoding
	// reading seq 1: SIGNAL_TEMPERATURE = 4.5
	// reading seq 2: SIGNAL_DOOR = 1
	// 2 frames, 1 dropped (1 bad COBS)
}

// AppendFrame frames a payload that is already encoded; the hub acknowledges with an Ack.
func ExampleAppendFrame() {
	wire, err := frame.AppendFrame(nil, frame.TypeAck, []byte{0x10, 0x03}) // Ack{seq: 3}
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", wire)
	// Output: 03 01 81 06 02 10 03 9e 41 00
}

// A serial source that reads the port itself feeds what arrives to a Parser; frames may
// be split across reads.
func ExampleParser() {
	wire, _ := frame.AppendMessage(nil, &fwpb.TimeSync{UnixMs: 1_767_225_600_000})
	p := frame.NewParser(frame.MaxHubFrame)
	for _, chunk := range [][]byte{wire[:3], wire[3:9], wire[9:]} {
		p.Feed(chunk, func(f frame.Frame) {
			var ts fwpb.TimeSync
			if err := f.Unmarshal(&ts); err == nil {
				fmt.Println(f.Type, ts.GetUnixMs())
			}
		})
	}
	// Output: TimeSync 1767225600000
}
