package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors from the table in vectors_test.go")

const vectorDir = "../testdata/vectors"

// A vector is one test case shared with firmware teams: a file of wire bytes in hex,
// with comment lines (#) that describe it and give its expected decoding as directives:
//
//	# expect-frames: N               number of intact frames
//	# expect-faults: none | ErrX=n … dropped segments by class (the others must be 0)
//	# expect-frame: type=0xNN message: <protobuf text format>
//	# expect-frame: type=0xNN payload-error: ErrX
//
// There is one expect-frame line per frame, in order. The table below is the source of
// the files; go test -update rewrites them, and the test fails if they differ from it.
type vector struct {
	name   string   // file name without .hex
	about  []string // description
	wire   func(t testing.TB) []byte
	frames []wantFrame
	faults string // "none" or "ErrBadCRC=1 …"
}

type wantFrame struct {
	typ     MsgType
	text    string // message in protobuf text format, or
	loadErr error  // the error Frame.Decode must give
}

// Messages of the worked examples. Boot id 0x1122334455667788 throughout.
const (
	helloText = `device_id: "fridge-7f3a" kind: "fridge" model: "HX-500" firmware_version: "2.4.1" ` +
		`boot_id: 0x1122334455667788 capabilities: [CAPABILITY_TIME_SYNC, CAPABILITY_DOOR, CAPABILITY_INVENTORY]`
	readingsText = `sent_mono_ms: 3605000 readings: [` +
		`{seq: 1 mono_ms: 3600000 signal: SIGNAL_TEMPERATURE value: 4.5}, ` +
		`{seq: 2 mono_ms: 3601250 wall_ms: 1767225601250 signal: SIGNAL_DOOR value: 1}, ` +
		`{seq: 3 mono_ms: 3604100 signal: SIGNAL_POWER value: 87.5 unit: "W"}]`
	eventsText = `boot_id: 0x1122334455667788 sent_mono_ms: 7300000 events: [` +
		`{seq: 4 mono_ms: 7200000 door: {state: DOOR_STATE_OPENED}}, ` +
		`{seq: 5 mono_ms: 7212000 door: {state: DOOR_STATE_CLOSED}}, ` +
		`{seq: 6 mono_ms: 7290000 error: {code: 0xE21 text: "drain blocked"}}]`
	inventoryText = `sent_mono_ms: 7400000 changes: [` +
		`{seq: 7 mono_ms: 7205000 action: INVENTORY_ACTION_ADDED category: "dairy" best_before_days: 20466}]`
	cycleText = `sent_mono_ms: 9000000 events: [` +
		`{seq: 8 mono_ms: 8999000 cycle: {phase: CYCLE_PHASE_FINISHED programme: "eco_40" energy_wh: 612 duration_s: 10800}}]`
	ackText      = `boot_id: 0x1122334455667788 seq: 3`
	nackText     = `reason: NACK_REASON_SEQ_GAP ref_type: 2 boot_id: 0x1122334455667788 seq: 4`
	timeSyncText = `unix_ms: 1767225600000`
)

func mustText(t testing.TB, typ MsgType, text string) proto.Message {
	t.Helper()
	m, err := NewMessage(typ)
	if err != nil {
		t.Fatal(err)
	}
	if err := prototext.Unmarshal([]byte(text), m); err != nil {
		t.Fatalf("%v text %q: %v", typ, text, err)
	}
	return m
}

func mustPayload(t testing.TB, typ MsgType, text string) []byte {
	t.Helper()
	p, err := proto.MarshalOptions{Deterministic: true}.Marshal(mustText(t, typ, text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// good returns the wire bytes of an intact frame carrying text, built by the reference.
func good(typ MsgType, text string) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		p := mustPayload(t, typ, text)
		return refWire(refRaw(1, typ, len(p), p))
	}
}

// raw returns the wire bytes of a decoded frame changed by edit before COBS encoding.
func raw(typ MsgType, text string, edit func(raw []byte) []byte) func(testing.TB) []byte {
	return func(t testing.TB) []byte {
		p := mustPayload(t, typ, text)
		return refWire(edit(refRaw(1, typ, len(p), p)))
	}
}

var vectors = []vector{
	{
		name:   "hello",
		about:  []string{"A fridge says hello after boot. The hub answers with an Ack for its boot_id (seq 0,", "nothing committed yet for this boot) and, if its clock is synchronised, a TimeSync."},
		wire:   good(TypeHello, helloText),
		frames: []wantFrame{{typ: TypeHello, text: helloText}},
		faults: "none",
	},
	{
		name: "readings",
		about: []string{
			"A batch of three readings, boot_id 0 (the boot of the current session).",
			"Reading 2 carries a wall time; reading 3 a unit. Values are IEEE 754 doubles,",
			"little-endian, as protobuf encodes them.",
		},
		wire:   good(TypeReadings, readingsText),
		frames: []wantFrame{{typ: TypeReadings, text: readingsText}},
		faults: "none",
	},
	{
		name:   "events",
		about:  []string{"Door opened, door closed, then a fault, with an explicit boot_id."},
		wire:   good(TypeEvents, eventsText),
		frames: []wantFrame{{typ: TypeEvents, text: eventsText}},
		faults: "none",
	},
	{
		name:   "cycle",
		about:  []string{"A washer cycle finished: programme, energy and duration."},
		wire:   good(TypeEvents, cycleText),
		frames: []wantFrame{{typ: TypeEvents, text: cycleText}},
		faults: "none",
	},
	{
		name:   "inventory",
		about:  []string{"The food sensor saw dairy go in, best before 2026-01-13 (day 20466)."},
		wire:   good(TypeInventory, inventoryText),
		frames: []wantFrame{{typ: TypeInventory, text: inventoryText}},
		faults: "none",
	},
	{
		name:   "ack",
		about:  []string{"The hub has committed every item of boot 0x1122334455667788 up to seq 3."},
		wire:   good(TypeAck, ackText),
		frames: []wantFrame{{typ: TypeAck, text: ackText}},
		faults: "none",
	},
	{
		name:   "nack",
		about:  []string{"The hub saw seq 5 but not seq 4: the device retransmits from seq 4 at once."},
		wire:   good(TypeNack, nackText),
		frames: []wantFrame{{typ: TypeNack, text: nackText}},
		faults: "none",
	},
	{
		name:   "timesync",
		about:  []string{"Hub wall time 2026-01-01T00:00:00Z."},
		wire:   good(TypeTimeSync, timeSyncText),
		frames: []wantFrame{{typ: TypeTimeSync, text: timeSyncText}},
		faults: "none",
	},
	{
		name: "hello-unknown-fields",
		about: []string{
			"A Hello from a newer firmware with two fields this version does not know",
			"(field 99, bytes; field 100, varint). They are ignored: the message equals hello.hex.",
		},
		wire: func(t testing.TB) []byte {
			p := mustPayload(t, TypeHello, helloText)
			p = protowire.AppendTag(p, 99, protowire.BytesType)
			p = protowire.AppendBytes(p, []byte("v2"))
			p = protowire.AppendTag(p, 100, protowire.VarintType)
			p = protowire.AppendVarint(p, 1)
			return refWire(refRaw(1, TypeHello, len(p), p))
		},
		frames: []wantFrame{{typ: TypeHello, text: helloText}},
		faults: "none",
	},
	{
		name:   "idle",
		about:  []string{"Delimiters alone (a sender flushing the line): no frame, no fault."},
		wire:   func(testing.TB) []byte { return []byte{0, 0, 0} },
		faults: "none",
	},
	{
		name: "garbage-then-valid",
		about: []string{
			"The hub started listening in the middle of a readings frame: the tail of that",
			"frame (its last 12 wire bytes), then a complete Ack. The tail happens to be valid",
			"COBS; it decodes to 10 bytes whose \"length field\" claims 57429, so it is dropped",
			"as ErrTruncated. The Ack after it is decoded.",
		},
		wire: func(t testing.TB) []byte {
			r := good(TypeReadings, readingsText)(t)
			return cat(r[len(r)-12:], good(TypeAck, ackText)(t))
		},
		frames: []wantFrame{{typ: TypeAck, text: ackText}},
		faults: "ErrTruncated=1",
	},
	{
		name: "truncated",
		about: []string{
			"The Ack of ack.hex with its last 3 decoded bytes lost (one payload byte and the",
			"CRC): the length field declares 11 payload bytes, only 10 arrived and no CRC.",
		},
		wire:   raw(TypeAck, ackText, func(b []byte) []byte { return b[:len(b)-3] }),
		faults: "ErrTruncated=1",
	},
	{
		name:   "bad-crc",
		about:  []string{"The Ack of ack.hex with bit 0 of its last payload byte flipped (seq 3 → 2)."},
		wire:   raw(TypeAck, ackText, func(b []byte) []byte { b[len(b)-3] ^= 0x01; return b }),
		faults: "ErrBadCRC=1",
	},
	{
		name: "bad-length",
		about: []string{
			"An Ack whose length field says 10 while 11 payload bytes follow (CRC correct):",
			"a sender bug, dropped as ErrBadLength.",
		},
		wire: raw(TypeAck, ackText, func(b []byte) []byte {
			b[3]--
			crc := refCRC16(b[:len(b)-2])
			b[len(b)-2], b[len(b)-1] = byte(crc>>8), byte(crc)
			return b
		}),
		faults: "ErrBadLength=1",
	},
	{
		name:  "bad-cobs",
		about: []string{"The Ack of ack.hex with its first COBS code byte corrupted to 0x40: the block runs past the delimiter."},
		wire: func(t testing.TB) []byte {
			w := good(TypeAck, ackText)(t)
			w[0] = 0x40
			return w
		},
		faults: "ErrBadCOBS=1",
	},
	{
		name:  "oversized",
		about: []string{"A frame of 600 decoded bytes (594-byte payload, CRC correct): more than MaxFrame (512)."},
		wire: func(t testing.TB) []byte {
			p := bytes.Repeat([]byte{0x55}, 594)
			return refWire(refRaw(1, TypeReadings, len(p), p))
		},
		faults: "ErrTooLong=1",
	},
	{
		name: "unknown-version",
		about: []string{
			"The Ack of ack.hex sent with framing version 2 (CRC correct): dropped and counted",
			"as ErrBadVersion; the hub answers Nack UNSUPPORTED_VERSION (ref_version 2).",
		},
		wire: raw(TypeAck, ackText, func(b []byte) []byte {
			b[0] = 2
			crc := refCRC16(b[:len(b)-2])
			b[len(b)-2], b[len(b)-1] = byte(crc>>8), byte(crc)
			return b
		}),
		faults: "ErrBadVersion=1",
	},
	{
		name: "protobuf-garbage",
		about: []string{
			"An intact Readings frame whose payload is the ASCII text \"not protobuf\" (0x6e",
			"is field 13 with the invalid wire type 6). The frame decodes; its payload does not:",
			"the hub answers Nack BAD_PAYLOAD (ref_type 0x02).",
		},
		wire: func(t testing.TB) []byte {
			p := []byte("not protobuf")
			return refWire(refRaw(1, TypeReadings, len(p), p))
		},
		frames: []wantFrame{{typ: TypeReadings, loadErr: ErrBadPayload}},
		faults: "none",
	},
	{
		name: "unknown-type",
		about: []string{
			"An intact frame of type 0x7e, unknown to version 1. The frame decodes; the hub",
			"answers Nack UNKNOWN_TYPE (ref_type 0x7e) and carries on.",
		},
		wire: func(t testing.TB) []byte {
			p := []byte{0x08, 0x01}
			return refWire(refRaw(1, 0x7e, len(p), p))
		},
		frames: []wantFrame{{typ: 0x7e, loadErr: ErrUnknownType}},
		faults: "none",
	},
}

var loadErrs = map[string]error{"ErrBadPayload": ErrBadPayload, "ErrUnknownType": ErrUnknownType}

var faultNames = map[string]int{
	"ErrTooLong": fTooLong, "ErrBadCOBS": fBadCOBS, "ErrTruncated": fTruncated,
	"ErrBadLength": fBadLength, "ErrBadCRC": fBadCRC, "ErrBadVersion": fBadVersion,
}

// render writes a vector file.
func (v vector) render(t testing.TB) []byte {
	wire := v.wire(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s.hex: hearth firmware protocol v1 test vector (see ../../SPEC.md).\n#\n", v.name)
	for _, l := range v.about {
		fmt.Fprintf(&b, "# %s\n", l)
	}
	fmt.Fprintf(&b, "#\n# expect-frames: %d\n# expect-faults: %s\n", len(v.frames), v.faults)
	for _, f := range v.frames {
		if f.loadErr != nil {
			fmt.Fprintf(&b, "# expect-frame: type=0x%02x payload-error: %s\n", uint8(f.typ), errName(f.loadErr))
		} else {
			fmt.Fprintf(&b, "# expect-frame: type=0x%02x message: %s\n", uint8(f.typ), f.text)
		}
	}
	// The decoded form of each segment, for people reading along.
	segs := bytes.Split(wire, []byte{0})
	for i, seg := range segs[:len(segs)-1] {
		if len(seg) == 0 {
			continue
		}
		dec, ok := refCOBSDecode(seg)
		if !ok {
			fmt.Fprintf(&b, "#\n# Segment %d is not valid COBS.\n", i+1)
			continue
		}
		fmt.Fprintf(&b, "#\n# Segment %d decoded (%d bytes):\n", i+1, len(dec))
		if len(dec) >= 4 {
			fmt.Fprintf(&b, "#   header  %s  (version %d, type 0x%02x, length %d)\n",
				hexBytes(dec[:4]), dec[0], dec[1], int(dec[2])<<8|int(dec[3]))
			body := dec[4:]
			if len(body) >= 2 {
				writeHexComment(&b, "payload", body[:len(body)-2])
				fmt.Fprintf(&b, "#   crc     %s\n", hexBytes(body[len(body)-2:]))
			}
		} else {
			fmt.Fprintf(&b, "#   %s\n", hexBytes(dec))
		}
	}
	fmt.Fprintf(&b, "#\n# Wire bytes (%d), COBS-encoded, each frame ending in the 0x00 delimiter:\n", len(wire))
	b.WriteString(hexLines(wire))
	return b.Bytes()
}

func errName(err error) string {
	for n, e := range loadErrs {
		if e == err {
			return n
		}
	}
	panic(err)
}

func hexBytes(p []byte) string {
	var s []string
	for _, c := range p {
		s = append(s, fmt.Sprintf("%02x", c))
	}
	return strings.Join(s, " ")
}

func writeHexComment(b *bytes.Buffer, label string, p []byte) {
	if len(p) == 0 {
		fmt.Fprintf(b, "#   %-7s (empty)\n", label)
		return
	}
	for i := 0; i < len(p); i += 16 {
		fmt.Fprintf(b, "#   %-7s %s\n", label, hexBytes(p[i:min(i+16, len(p))]))
		label = ""
	}
}

// hexLines formats b as lowercase hex, 16 bytes a line.
func hexLines(b []byte) string {
	var s strings.Builder
	for i := 0; i < len(b); i += 16 {
		s.WriteString(hexBytes(b[i:min(i+16, len(b))]))
		s.WriteByte('\n')
	}
	return s.String()
}

// vectorFile is a parsed vector file.
type vectorFile struct {
	wire       []byte
	wireText   string // the hex lines as written
	frames     int
	faults     [numFaults]uint64
	wantFrames []string // expect-frame values
}

var directive = regexp.MustCompile(`^# (expect-[a-z]+): (.*)$`)

func parseVector(t testing.TB, name string, data []byte) vectorFile {
	t.Helper()
	var vf vectorFile
	var hexText strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			m := directive.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			seen[m[1]] = true
			switch m[1] {
			case "expect-frames":
				n, err := strconv.Atoi(m[2])
				if err != nil {
					t.Fatalf("%s: %q: %v", name, line, err)
				}
				vf.frames = n
			case "expect-faults":
				if m[2] == "none" {
					break
				}
				for _, kv := range strings.Fields(m[2]) {
					k, v, _ := strings.Cut(kv, "=")
					class, ok := faultNames[k]
					n, err := strconv.ParseUint(v, 10, 64)
					if !ok || err != nil {
						t.Fatalf("%s: bad expect-faults entry %q", name, kv)
					}
					vf.faults[class] = n
				}
			case "expect-frame":
				vf.wantFrames = append(vf.wantFrames, m[2])
			default:
				t.Fatalf("%s: unknown directive %q", name, m[1])
			}
			continue
		}
		hexText.WriteString(line)
		hexText.WriteByte('\n')
	}
	if !seen["expect-frames"] || !seen["expect-faults"] {
		t.Fatalf("%s: missing expect-frames or expect-faults", name)
	}
	vf.wireText = strings.TrimRight(hexText.String(), "\n") + "\n"
	wire, err := hex.DecodeString(strings.Join(strings.Fields(hexText.String()), ""))
	if err != nil {
		t.Fatalf("%s: wire bytes: %v", name, err)
	}
	vf.wire = wire
	return vf
}

var expectFrame = regexp.MustCompile(`^type=0x([0-9a-f]{2}) (message|payload-error): (.*)$`)

// checkVector decodes a vector file's wire bytes and checks every expectation in it.
func checkVector(t *testing.T, name string, vf vectorFile) {
	t.Helper()
	var frames []Frame
	d := NewDecoder(bytes.NewReader(vf.wire), 0)
	for {
		f, err := d.Next()
		if err != nil {
			if err != io.EOF {
				t.Fatalf("%s: Next: %v", name, err)
			}
			break
		}
		f.Payload = bytes.Clone(f.Payload)
		frames = append(frames, f)
	}
	s := d.Stats()
	if got := [numFaults]uint64{s.TooLong, s.BadCOBS, s.Truncated, s.BadLength, s.BadCRC, s.BadVersion}; got != vf.faults {
		t.Errorf("%s: faults %+v, want %v (order TooLong BadCOBS Truncated BadLength BadCRC BadVersion)", name, s, vf.faults)
	}
	if len(frames) != vf.frames || len(vf.wantFrames) != vf.frames {
		t.Fatalf("%s: %d frames, %d expect-frame lines; want %d", name, len(frames), len(vf.wantFrames), vf.frames)
	}
	for i, f := range frames {
		m := expectFrame.FindStringSubmatch(vf.wantFrames[i])
		if m == nil {
			t.Fatalf("%s: bad expect-frame %q", name, vf.wantFrames[i])
		}
		typ, _ := strconv.ParseUint(m[1], 16, 8)
		if f.Type != MsgType(typ) || f.Version != Version {
			t.Errorf("%s frame %d: type %v version %d, want type 0x%s version 1", name, i, f.Type, f.Version, m[1])
		}
		got, err := f.Decode()
		if m[2] == "payload-error" {
			if want := loadErrs[m[3]]; want == nil || !errors.Is(err, want) {
				t.Errorf("%s frame %d: Decode err = %v, want %s", name, i, err, m[3])
			}
			continue
		}
		if err != nil {
			t.Errorf("%s frame %d: Decode: %v", name, i, err)
			continue
		}
		if want := mustText(t, f.Type, m[3]); !proto.Equal(got, want) {
			t.Errorf("%s frame %d: message\n got %v\nwant %v", name, i, got, want)
		}
		// A valid message re-encodes to the same frame (unknown fields aside).
		if name != "hello-unknown-fields" {
			re, err := AppendMessage(nil, got)
			if err != nil || !bytes.Contains(vf.wire, re) {
				t.Errorf("%s frame %d: re-encoded frame % x not found in the vector", name, i, re)
			}
		}
	}
}

func TestVectors(t *testing.T) {
	if *update {
		files, _ := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	names := map[string]bool{}
	for _, v := range vectors {
		names[v.name+".hex"] = true
		path := filepath.Join(vectorDir, v.name+".hex")
		want := v.render(t)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create the vectors)", err)
		}
		if !bytes.Equal(data, want) {
			t.Errorf("%s differs from the table in vectors_test.go; run go test -update if the change is intended", path)
		}
		checkVector(t, v.name, parseVector(t, v.name, data))
	}
	// No stray files: every vector on disk is in the table.
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s is not in the vector table", f)
		}
	}
}
