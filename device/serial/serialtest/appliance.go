// Package serialtest is a simulated appliance firmware speaking hearth's UART protocol
// (firmware-proto/SPEC.md) from the device side: Hello until acknowledged, numbered
// items in batches, go-back-N retransmission of what is not acknowledged, a persistent
// queue across simulated reboots, and fault injection with exact accounting, so that
// tests (and cmd/appliance-sim) can tell precisely what the hub must have stored and
// counted. It builds its frames with its own COBS and CRC code, written from SPEC.md,
// not with package frame: the hub's decoder is checked against an independent encoder.
package serialtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// Faults are injected per frame sent, each with its probability in [0, 1].
type Faults struct {
	// Garbage puts a foreign segment before the frame: random bytes, an oversized
	// segment, an intact frame of framing version 2, of unknown type 0x7e, or a
	// Readings frame whose payload is not protobuf.
	Garbage float64
	// DropBytes loses one byte of the frame on the wire (not its delimiter).
	DropBytes float64
	// BadCRC flips one bit of the frame's payload or CRC.
	BadCRC float64
	// Retransmit sends the frame twice.
	Retransmit float64
	// RebootEvery reboots the device (a new boot id; unacknowledged items are kept and
	// resent with their original boot id) after every RebootEvery items; 0 never.
	RebootEvery int
}

// Options describe the simulated appliance.
type Options struct {
	DeviceID string // default "fridge-sim"
	Kind     string // default "fridge"
	Items    int    // items to generate in all
	Batch    int    // items per frame at most (default 8)
	Queue    int    // unacknowledged items kept (default 256)
	// Timeout is the first retransmission timeout (default 1s); it doubles up to 30s.
	Timeout time.Duration
	// HelloEvery is the Hello repeat period until acknowledged (default 2s).
	HelloEvery time.Duration
	// Rate limits generation to this many items a second; 0: as fast as the queue
	// allows.
	Rate   float64
	Faults Faults
	Seed   uint64
}

// Item is one generated item, as the hub must store it.
type Item struct {
	Boot, Seq uint64
	Type      frame.MsgType
	Signal    fwpb.Signal // for Readings
	Value     float64
}

// Stats count what the appliance did.
type Stats struct {
	Generated int // items generated
	Acked     int // items freed by an Ack
	Frames    int // batch frames written, retransmissions included
	Resent    int // batch frames holding an item sent before (timeout, SEQ_GAP, BUSY, reboot)
	Hellos    int
	Boots     int
	Acks      int
	Nacks     map[string]int // by reason
	// Injected counts injected faults: garbage, too_long, bad_version, unknown_type,
	// bad_payload, drop_bytes, bad_crc, retransmit.
	Injected map[string]int
}

// FramingFaults is how many segments the hub must have dropped as damaged.
func (s Stats) FramingFaults() int {
	return s.Injected["garbage"] + s.Injected["too_long"] + s.Injected["bad_version"] +
		s.Injected["drop_bytes"] + s.Injected["bad_crc"]
}

type item struct {
	Item
	msg  proto.Message // *fwpb.Reading, *fwpb.Event or *fwpb.InventoryChange
	sent bool          // sent since the last go-back
	once bool          // sent at least once
}

// Appliance is a simulated device. Its state (boot, queue, sequence) survives Run
// returning, so Run may be called again on a new link (a cable replugged).
type Appliance struct {
	o   Options
	rng *rand.Rand
	t0  time.Time

	mu       sync.Mutex
	st       Stats
	items    []Item
	boot     uint64
	next     uint64
	queue    []*item
	session  bool
	timeout  time.Duration
	progress time.Time
	lastHelo time.Time
	wallOff  int64 // from TimeSync: unix ms − mono ms; 0 unknown
}

// New returns an appliance that has just booted.
func New(o Options) *Appliance {
	if o.DeviceID == "" {
		o.DeviceID = "fridge-sim"
	}
	if o.Kind == "" {
		o.Kind = "fridge"
	}
	if o.Batch <= 0 {
		o.Batch = 8
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.HelloEvery <= 0 {
		o.HelloEvery = 2 * time.Second
	}
	a := &Appliance{o: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), t0: time.Now()}
	a.st.Nacks, a.st.Injected = map[string]int{}, map[string]int{}
	a.reboot()
	return a
}

func (a *Appliance) reboot() {
	a.boot = a.rng.Uint64() | 1
	a.next = 1
	a.session = false
	a.lastHelo = time.Time{}
	a.timeout = a.o.Timeout
	a.st.Boots++
	for _, it := range a.queue {
		it.sent = false
	}
}

// Stats returns a copy of the counts so far.
func (a *Appliance) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.Nacks, s.Injected = map[string]int{}, map[string]int{}
	for k, v := range a.st.Nacks {
		s.Nacks[k] = v
	}
	for k, v := range a.st.Injected {
		s.Injected[k] = v
	}
	return s
}

// Items returns every item generated so far.
func (a *Appliance) Items() []Item {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Item(nil), a.items...)
}

// Done reports whether every item is generated and acknowledged.
func (a *Appliance) Done() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Generated == a.o.Items && len(a.queue) == 0
}

func (a *Appliance) mono() uint64 { return uint64(time.Since(a.t0).Milliseconds()) + 1 }

// ErrDone is returned by Run when every item has been acknowledged.
var ErrDone = errors.New("serialtest: every item acknowledged")

// Run speaks the protocol over link until every item is acknowledged (ErrDone), ctx
// ends (ctx.Err()) or link fails (its error). The caller closes link; closing it is also
// how to stop a Run blocked in a write.
func (a *Appliance) Run(ctx context.Context, link io.ReadWriter) error {
	msgs := make(chan proto.Message, 64)
	rerr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		p := frame.NewParser(frame.MaxHubFrame)
		buf := make([]byte, 256)
		for {
			n, err := link.Read(buf)
			p.Feed(buf[:n], func(f frame.Frame) {
				if m, err := f.Decode(); err == nil {
					select {
					case msgs <- m:
					case <-stop:
					}
				}
			})
			if err != nil {
				rerr <- err
				return
			}
		}
	}()
	w := &wire{a: a, w: link}
	if err := w.raw([]byte{0}); err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := a.step(w); err != nil {
			return err
		}
		if a.Done() {
			return ErrDone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-rerr:
			return fmt.Errorf("serialtest: link: %w", err)
		case m := <-msgs:
			a.hub(m)
		case <-tick.C:
		}
	}
}

// hub applies a frame from the hub.
func (a *Appliance) hub(m proto.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	switch m := m.(type) {
	case *fwpb.Ack:
		a.st.Acks++
		if m.BootId == a.boot && !a.session {
			a.session = true
			a.progress = now
		}
		kept := a.queue[:0]
		freed := 0
		for _, it := range a.queue {
			if it.Boot == m.BootId && it.Seq <= m.Seq {
				freed++
				continue
			}
			kept = append(kept, it)
		}
		clear(a.queue[len(kept):])
		a.queue = kept
		if freed > 0 {
			a.st.Acked += freed
			a.timeout = a.o.Timeout
			a.progress = now
		}
	case *fwpb.Nack:
		a.st.Nacks[m.Reason.String()]++
		switch m.Reason {
		case fwpb.NackReason_NACK_REASON_SEQ_GAP:
			for _, it := range a.queue {
				if it.Boot == m.BootId && it.Seq >= m.Seq {
					it.sent = false
				}
			}
		case fwpb.NackReason_NACK_REASON_NO_SESSION:
			a.session = false
			a.lastHelo = time.Time{}
		case fwpb.NackReason_NACK_REASON_INVALID:
			for i, it := range a.queue {
				if it.Boot == m.BootId && it.Seq == m.Seq && m.Seq != 0 {
					a.queue = append(a.queue[:i], a.queue[i+1:]...)
					break
				}
			}
		case fwpb.NackReason_NACK_REASON_BUSY:
			a.progress = now.Add(time.Duration(m.RetryAfterMs)*time.Millisecond - a.timeout)
		}
	case *fwpb.TimeSync:
		a.wallOff = m.UnixMs - int64(a.mono())
	}
}

// step does whatever is due: Hello, generation, sending, retransmission.
func (a *Appliance) step(w *wire) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if !a.session {
		if now.Sub(a.lastHelo) < a.o.HelloEvery {
			return nil
		}
		a.lastHelo = now
		a.st.Hellos++
		h := &fwpb.Hello{DeviceId: a.o.DeviceID, Kind: a.o.Kind, Model: "SIM-1", FirmwareVersion: "1.0.0", BootId: a.boot,
			Capabilities: []fwpb.Capability{fwpb.Capability_CAPABILITY_TIME_SYNC, fwpb.Capability_CAPABILITY_DOOR,
				fwpb.Capability_CAPABILITY_INVENTORY, fwpb.Capability_CAPABILITY_PERSISTENT_QUEUE}}
		return w.frame(frame.TypeHello, h, false)
	}
	for a.st.Generated < a.o.Items && len(a.queue) < a.o.Queue {
		if a.o.Rate > 0 && float64(a.st.Generated) >= a.o.Rate*time.Since(a.t0).Seconds() {
			break
		}
		a.generate()
		if a.o.Faults.RebootEvery > 0 && a.st.Generated%a.o.Faults.RebootEvery == 0 && a.st.Generated < a.o.Items {
			a.reboot()
			return nil
		}
	}
	if len(a.queue) > 0 && now.Sub(a.progress) >= a.timeout {
		for _, it := range a.queue {
			it.sent = false
		}
		a.timeout = min(2*a.timeout, 30*time.Second)
		a.progress = now
	}
	// Send unsent items, oldest first, in batches of one boot and one type.
	for i := 0; i < len(a.queue); {
		if a.queue[i].sent {
			i++
			continue
		}
		j := i + 1
		for j < len(a.queue) && j-i < a.o.Batch && !a.queue[j].sent &&
			a.queue[j].Boot == a.queue[i].Boot && a.queue[j].Type == a.queue[i].Type {
			j++
		}
		batch := a.queue[i:j]
		for _, it := range batch {
			if it.once {
				a.st.Resent++
				break
			}
		}
		for _, it := range batch {
			it.sent, it.once = true, true
		}
		if err := w.frame(batch[0].Type, a.batchMsg(batch), true); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func (a *Appliance) batchMsg(b []*item) proto.Message {
	boot := b[0].Boot
	if boot == a.boot {
		boot = 0 // the session's boot
	}
	sent := a.mono()
	switch b[0].Type {
	case frame.TypeReadings:
		m := &fwpb.Readings{BootId: boot, SentMonoMs: sent}
		for _, it := range b {
			m.Readings = append(m.Readings, it.msg.(*fwpb.Reading))
		}
		return m
	case frame.TypeEvents:
		m := &fwpb.Events{BootId: boot, SentMonoMs: sent}
		for _, it := range b {
			m.Events = append(m.Events, it.msg.(*fwpb.Event))
		}
		return m
	}
	m := &fwpb.Inventory{BootId: boot, SentMonoMs: sent}
	for _, it := range b {
		m.Changes = append(m.Changes, it.msg.(*fwpb.InventoryChange))
	}
	return m
}

var categories = []string{"dairy", "vegetables", "meat", "drinks", "fruit"}

// generate numbers and queues the next item: mostly readings, some door, cycle or
// error events and food-sensor changes, as the kind would produce.
func (a *Appliance) generate() {
	seq, mono := a.next, a.mono()
	a.next++
	var wall int64
	if a.wallOff != 0 {
		wall = a.wallOff + int64(mono)
	}
	it := &item{Item: Item{Boot: a.boot, Seq: seq}}
	n := a.st.Generated
	switch r := n % 10; {
	case r < 6:
		sig, v := fwpb.Signal_SIGNAL_TEMPERATURE, 3.5+a.rng.Float64()
		if r%2 == 1 {
			sig, v = fwpb.Signal_SIGNAL_POWER, float64(60+a.rng.IntN(80))
		}
		it.Type, it.Signal, it.Value = frame.TypeReadings, sig, v
		it.msg = &fwpb.Reading{Seq: seq, MonoMs: mono, WallMs: wall, Signal: sig, Value: v}
	case r < 8:
		st := fwpb.DoorState_DOOR_STATE_OPENED
		it.Value = 1
		if r == 7 {
			st, it.Value = fwpb.DoorState_DOOR_STATE_CLOSED, 0
		}
		it.Type, it.Signal = frame.TypeEvents, fwpb.Signal_SIGNAL_DOOR
		it.msg = &fwpb.Event{Seq: seq, MonoMs: mono, WallMs: wall, Event: &fwpb.Event_Door{Door: &fwpb.DoorEvent{State: st}}}
	case r == 8 && a.o.Kind == "fridge":
		act, v := fwpb.InventoryAction_INVENTORY_ACTION_ADDED, 1.0
		if n%20 >= 10 {
			act, v = fwpb.InventoryAction_INVENTORY_ACTION_REMOVED, -1
		}
		it.Type, it.Signal, it.Value = frame.TypeInventory, fwpb.Signal_SIGNAL_INVENTORY, v
		it.msg = &fwpb.InventoryChange{Seq: seq, MonoMs: mono, WallMs: wall, Action: act,
			Category: categories[n%len(categories)], BestBeforeDays: 20500 + int32(n%30)}
	case r == 8:
		it.Type, it.Signal, it.Value = frame.TypeEvents, fwpb.Signal_SIGNAL_CYCLE, 0
		it.msg = &fwpb.Event{Seq: seq, MonoMs: mono, WallMs: wall, Event: &fwpb.Event_Cycle{Cycle: &fwpb.CycleEvent{
			Phase: fwpb.CyclePhase_CYCLE_PHASE_FINISHED, Programme: "eco", EnergyWh: 800}}}
	default:
		it.Type, it.Signal, it.Value = frame.TypeEvents, fwpb.Signal_SIGNAL_ERROR, float64(10+n%5)
		it.msg = &fwpb.Event{Seq: seq, MonoMs: mono, WallMs: wall, Event: &fwpb.Event_Error{Error: &fwpb.ErrorEvent{
			Code: uint32(10 + n%5), Text: "sensor"}}}
	}
	a.st.Generated++
	a.items = append(a.items, it.Item)
	a.queue = append(a.queue, it)
}

// wire writes frames with fault injection.
type wire struct {
	a   *Appliance
	w   io.Writer
	buf []byte
}

func (w *wire) raw(b []byte) error {
	for len(b) > 0 {
		n, err := w.w.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// frame encodes m and writes it, with faults if batch.
func (w *wire) frame(t frame.MsgType, m proto.Message, batch bool) error {
	a := w.a
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	f := a.o.Faults
	if batch {
		a.st.Frames++
		if f.Garbage > 0 && a.rng.Float64() < f.Garbage {
			if err := w.raw(w.garbage()); err != nil {
				return err
			}
		}
	}
	raw := RawFrame(frame.Version, t, payload)
	bad := ""
	if batch {
		switch {
		case f.BadCRC > 0 && a.rng.Float64() < f.BadCRC:
			// a bit of the payload or CRC: caught by the CRC, never by length or COBS
			i := 4 + a.rng.IntN(len(raw)-4)
			raw[i] ^= 1 << a.rng.IntN(8)
			bad = "bad_crc"
		case f.DropBytes > 0 && a.rng.Float64() < f.DropBytes:
			bad = "drop_bytes"
		}
	}
	enc := COBS(nil, raw)
	if bad == "drop_bytes" {
		i := a.rng.IntN(len(enc))
		enc = append(enc[:i], enc[i+1:]...)
	}
	if bad != "" {
		a.st.Injected[bad]++
		a.st.Frames-- // not a frame the hub can take
	}
	enc = append(enc, 0)
	if err := w.raw(enc); err != nil {
		return err
	}
	if batch && bad == "" && f.Retransmit > 0 && a.rng.Float64() < f.Retransmit {
		a.st.Injected["retransmit"]++
		return w.raw(enc)
	}
	return nil
}

// garbage returns one foreign segment, delimiter included, and counts it.
func (w *wire) garbage() []byte {
	a := w.a
	switch k := a.rng.IntN(6); k {
	case 0, 1: // line noise: random non-zero bytes
		b := make([]byte, 1+a.rng.IntN(40))
		for i := range b {
			b[i] = byte(1 + a.rng.IntN(255))
		}
		a.st.Injected["garbage"]++
		return append(b, 0)
	case 2:
		b := make([]byte, 600+a.rng.IntN(400))
		for i := range b {
			b[i] = byte(1 + a.rng.IntN(255))
		}
		a.st.Injected["too_long"]++
		return append(b, 0)
	case 3:
		a.st.Injected["bad_version"]++
		return append(COBS(nil, RawFrame(2, frame.TypeReadings, []byte{0x10, 0x01})), 0)
	case 4:
		a.st.Injected["unknown_type"]++
		return append(COBS(nil, RawFrame(frame.Version, 0x7e, []byte{0x08, 0x01})), 0)
	default:
		a.st.Injected["bad_payload"]++
		return append(COBS(nil, RawFrame(frame.Version, frame.TypeReadings, []byte{0xff, 0xff, 0xff})), 0)
	}
}

// RawFrame returns the decoded frame of SPEC.md §2: version, type, big-endian length,
// payload, big-endian CRC-16/CCITT-FALSE.
func RawFrame(version byte, t frame.MsgType, payload []byte) []byte {
	b := make([]byte, 4, len(payload)+6)
	b[0], b[1] = version, byte(t)
	binary.BigEndian.PutUint16(b[2:], uint16(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint16(b, CRC16(0xFFFF, b))
}

// CRC16 is SPEC.md §3's table-free CRC-16/CCITT-FALSE (start with 0xFFFF).
func CRC16(crc uint16, p []byte) uint16 {
	for _, c := range p {
		x := byte(crc>>8) ^ c
		x ^= x >> 4
		crc = crc<<8 ^ uint16(x)<<12 ^ uint16(x)<<5 ^ uint16(x)
	}
	return crc
}

// COBS appends the COBS encoding of src to dst, as SPEC.md §4 describes (no
// delimiter).
func COBS(dst, src []byte) []byte {
	at := len(dst)
	dst = append(dst, 0)
	code := byte(1)
	for i, b := range src {
		if b != 0 {
			dst = append(dst, b)
			code++
		}
		if b == 0 || code == 0xFF {
			dst[at] = code
			code = 1
			if b != 0 && i+1 == len(src) {
				return dst
			}
			at = len(dst)
			dst = append(dst, 0)
		}
	}
	dst[at] = code
	return dst
}
