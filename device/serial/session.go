package serial

import (
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/fwconv"
	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// Limits of the hub's bookkeeping per port.
const (
	// window is how far above its contiguous committed prefix a boot may run: items
	// further up are not taken (the device resends them once the gap is filled), so the
	// set of committed sequences above a gap stays within window/8 bytes.
	window = 4096
	// maxBoots is how many boots per port the source remembers; older ones are
	// forgotten (Committed answers for them if they come back).
	maxBoots = 8
	// busyRetryMs is the retry_after_ms of a Nack BUSY.
	busyRetryMs = 1000
)

// bootState is what the hub knows of one boot of one device.
type bootState struct {
	dev      string
	kind     device.Kind
	boot     uint64
	contig   uint64            // every item 1..contig is committed (or consumed)
	above    map[uint64]uint64 // bitmap of committed items above contig+1: word index → bits
	nAbove   int
	inflight int    // batches of this boot awaiting commit
	acked    uint64 // last Ack sent
	ackDue   bool   // an Ack is owed (a batch committed, or duplicates arrived)
	gapNack  uint64 // the seq of the last SEQ_GAP Nack sent
	used     uint64 // session clock of the last use, to forget the oldest boot
}

func (b *bootState) has(seq uint64) bool {
	if seq <= b.contig {
		return true
	}
	w, ok := b.above[seq/64]
	return ok && w&(1<<(seq%64)) != 0
}

// done marks seq committed and advances the contiguous prefix.
func (b *bootState) done(seq uint64) {
	if b.has(seq) {
		return
	}
	if seq == b.contig+1 {
		b.contig++
		for b.nAbove > 0 {
			next := b.contig + 1
			w := b.above[next/64]
			if w&(1<<(next%64)) == 0 {
				break
			}
			w &^= 1 << (next % 64)
			if w == 0 {
				delete(b.above, next/64)
			} else {
				b.above[next/64] = w
			}
			b.nAbove--
			b.contig++
		}
		return
	}
	if b.above == nil {
		b.above = map[uint64]uint64{}
	}
	b.above[seq/64] |= 1 << (seq % 64)
	b.nAbove++
}

// result is one batch's commit outcome, from the sink's done callback.
type result struct {
	st   *bootState
	seqs []uint64
	err  error
	// stand is set for a batch of error readings standing in for items the sink
	// refused for good (see rejected).
	stand bool
}

// session is the hub side of the protocol for one port: current session, boots, the
// frames to send. It belongs to the goroutine running Source.Run.
type session struct {
	s     *Source
	cur   *bootState // the boot of the last accepted Hello
	bound string     // the device id of the first accepted Hello: the port's appliance
	boots map[bootKey]*bootState
	clock uint64

	inflight int         // batches awaiting commit, all boots
	sink     device.Sink // of the last frame handled: where rejected items' stand-ins go
	w        io.Writer
	out      []byte // frames waiting for flush
	nackTok  tokens
	verNack  time.Time
	last     int // offset in out of the last frame queued

	hello    fwpb.Hello
	readings fwpb.Readings
	events   fwpb.Events
	inv      fwpb.Inventory
	ack      fwpb.Ack
	nack     fwpb.Nack
	ts       fwpb.TimeSync
}

type bootKey struct {
	dev  string
	boot uint64
}

func (ss *session) init(s *Source) {
	ss.s = s
	ss.boots = map[bootKey]*bootState{}
	ss.nackTok = tokens{rate: float64(s.o.NacksPerSecond)}
}

// handle processes one frame from the reader.
func (ss *session) handle(f inFrame, sink device.Sink) {
	ss.sink = sink
	m := ss.s.m
	if f.version != 0 {
		ss.nackVersion(f)
		return
	}
	if f.typ.Known() {
		m.frames.WithLabelValues(f.typ.String()).Inc()
	} else {
		m.frames.WithLabelValues("unknown").Inc() // bounded label values
	}
	var msg proto.Message
	switch f.typ {
	case frame.TypeHello:
		msg = &ss.hello
	case frame.TypeReadings:
		msg = &ss.readings
	case frame.TypeEvents:
		msg = &ss.events
	case frame.TypeInventory:
		msg = &ss.inv
	default:
		if f.typ.FromHub() {
			m.faults.WithLabelValues(faultHubType).Inc()
			ss.s.lim.Warn(faultHubType, "ignored a hub → device frame sent by the device", "type", f.typ)
			return
		}
		m.faults.WithLabelValues(faultUnknownType).Inc()
		ss.s.lim.Warn(faultUnknownType, "frame of unknown type; sending Nack UNKNOWN_TYPE", "type", f.typ)
		ss.sendNack(fwpb.NackReason_NACK_REASON_UNKNOWN_TYPE, uint32(f.typ), 0, 0, "")
		return
	}
	proto.Reset(msg)
	if err := (frame.Frame{Version: frame.Version, Type: f.typ, Payload: f.buf}).Unmarshal(msg); err != nil {
		m.faults.WithLabelValues(faultBadPayload).Inc()
		ss.s.lim.Warn(faultBadPayload, "frame payload is not protobuf; sending Nack BAD_PAYLOAD", "type", f.typ, "err", err)
		ss.sendNack(fwpb.NackReason_NACK_REASON_BAD_PAYLOAD, uint32(f.typ), 0, 0, "")
		return
	}
	switch f.typ {
	case frame.TypeHello:
		ss.onHello(&ss.hello)
	case frame.TypeReadings:
		ss.onBatch(f.typ, ss.readings.BootId, ss.readings.SentMonoMs, len(ss.readings.Readings), func(r *device.Reading, i int, now time.Time, st *bootState) (uint64, error) {
			it := ss.readings.Readings[i]
			fwconv.Stamp(r, st.dev, st.kind, st.boot, it.Seq, it.MonoMs, it.WallMs, ss.readings.SentMonoMs, now)
			return it.Seq, fwconv.FromReading(r, it)
		}, sink)
	case frame.TypeEvents:
		ss.onBatch(f.typ, ss.events.BootId, ss.events.SentMonoMs, len(ss.events.Events), func(r *device.Reading, i int, now time.Time, st *bootState) (uint64, error) {
			it := ss.events.Events[i]
			fwconv.Stamp(r, st.dev, st.kind, st.boot, it.Seq, it.MonoMs, it.WallMs, ss.events.SentMonoMs, now)
			return it.Seq, fwconv.FromEvent(r, it)
		}, sink)
	case frame.TypeInventory:
		ss.onBatch(f.typ, ss.inv.BootId, ss.inv.SentMonoMs, len(ss.inv.Changes), func(r *device.Reading, i int, now time.Time, st *bootState) (uint64, error) {
			it := ss.inv.Changes[i]
			fwconv.Stamp(r, st.dev, st.kind, st.boot, it.Seq, it.MonoMs, it.WallMs, ss.inv.SentMonoMs, now)
			return it.Seq, fwconv.FromChange(r, it)
		}, sink)
	}
}

// state returns the state of (dev, boot), creating it from Options.Committed.
func (ss *session) state(dev string, kind device.Kind, boot uint64) *bootState {
	ss.clock++
	k := bootKey{dev, boot}
	st := ss.boots[k]
	if st == nil {
		st = &bootState{dev: dev, kind: kind, boot: boot}
		if ss.s.o.Committed != nil {
			st.contig = ss.s.o.Committed(dev, boot)
		}
		st.acked = st.contig
		if len(ss.boots) >= maxBoots {
			var old *bootState
			for _, b := range ss.boots {
				if b != ss.cur && b.inflight == 0 && (old == nil || b.used < old.used) {
					old = b
				}
			}
			if old != nil {
				delete(ss.boots, bootKey{old.dev, old.boot})
			}
		}
		ss.boots[k] = st
	}
	st.used = ss.clock
	return st
}

func (ss *session) onHello(h *fwpb.Hello) {
	kind := device.Kind(h.Kind)
	var err error
	switch {
	case device.ValidID(h.DeviceId) != nil:
		err = fmt.Errorf("device id: %v", device.ValidID(h.DeviceId))
	case !kind.Valid():
		err = fmt.Errorf("unknown kind %q", h.Kind)
	case h.BootId == 0:
		err = errors.New("boot id 0")
	case ss.bound != "" && h.DeviceId != ss.bound:
		// One UART, one appliance: a port that once said it is device A does not
		// become device B (a hostile or confused firmware minting ids would grow the
		// store without bound, or write under another device's id). Restart hearth
		// after moving an appliance to another port.
		err = fmt.Errorf("device id %q on a port bound to %q", h.DeviceId, ss.bound)
	}
	if err != nil {
		ss.s.m.items.WithLabelValues(itemInvalid).Inc()
		ss.s.lim.Warn("hello", "refused a Hello; sending Nack INVALID", "err", err)
		ss.sendNack(fwpb.NackReason_NACK_REASON_INVALID, uint32(frame.TypeHello), h.BootId, 0, "bad hello")
		return
	}
	ss.bound = h.DeviceId
	st := ss.state(h.DeviceId, kind, h.BootId)
	st.kind = kind
	if ss.cur != st {
		ss.s.log.Info("device session", "device", h.DeviceId, "kind", h.Kind, "model", h.Model,
			"firmware", h.FirmwareVersion, "boot", fmt.Sprintf("%016x", h.BootId), "committed", st.contig)
	}
	ss.cur = st
	ss.sendAck(st)
	ss.timeSync()
}

// itemFn converts item i of the batch being handled into r and returns its seq.
type itemFn func(r *device.Reading, i int, now time.Time, st *bootState) (uint64, error)

func (ss *session) onBatch(typ frame.MsgType, boot, sentMono uint64, n int, conv itemFn, sink device.Sink) {
	m := ss.s.m
	var st *bootState
	switch {
	case ss.cur == nil:
	case boot == 0 || boot == ss.cur.boot:
		st = ss.cur
	default: // items of an earlier boot, from a device with a persistent queue
		st = ss.state(ss.cur.dev, ss.cur.kind, boot)
	}
	if st == nil {
		m.items.WithLabelValues(itemNoSession).Add(float64(n))
		ss.sendNack(fwpb.NackReason_NACK_REASON_NO_SESSION, uint32(typ), boot, 0, "")
		return
	}
	now := ss.s.o.Now()
	rs := make([]device.Reading, n)
	seqs := make([]uint64, 0, n)
	k := 0
	for i := range n {
		r := &rs[k]
		seq, err := conv(r, i, now, st)
		switch {
		case err == nil && seq != 0 && st.has(seq):
			m.items.WithLabelValues(itemDuplicate).Inc()
			st.ackDue = true
			continue
		case err == nil && seq > st.contig+window:
			m.items.WithLabelValues(itemWindow).Inc()
			continue
		}
		if err == nil {
			err = fwconv.Check(r)
		}
		if err != nil {
			m.items.WithLabelValues(itemInvalid).Inc()
			ss.s.lim.Warn("invalid", "refused an item; sending Nack INVALID", "device", st.dev, "err", err)
			ss.sendNack(fwpb.NackReason_NACK_REASON_INVALID, uint32(typ), st.boot, seq, "")
			if seq == 0 || seq > st.contig+window {
				continue
			}
			// The device frees an item it was told is invalid and never sends it again,
			// so its sequence must count as consumed durably — in the store's dedupe
			// state, not only in this session's memory, or after a hub restart the Ack
			// would stall below it for the rest of the boot. It is stored as what it
			// is: an error reading (value -1, the reason in the label) from the device.
			dt := r.DeviceTime
			*r = device.Reading{Device: st.dev, Kind: st.kind, Signal: device.SignalError, Value: InvalidItemCode,
				Label: invalidLabel(err), Boot: st.boot, Seq: seq, DeviceTime: dt}
		}
		seqs = append(seqs, seq)
		k++
	}
	if k == 0 {
		ss.checkGap(st)
		return
	}
	st.inflight++
	ss.inflight++
	m.pending.Set(float64(ss.inflight))
	results := ss.s.results
	sink.Submit(rs[:k], func(err error) { results <- result{st: st, seqs: seqs, err: err} })
}

// result applies a commit outcome.
func (ss *session) result(r result) {
	m := ss.s.m
	r.st.inflight--
	ss.inflight--
	m.pending.Set(float64(ss.inflight))
	switch {
	case r.err != nil && ss.s.o.Retryable(r.err):
		m.items.WithLabelValues(itemRefused).Add(float64(len(r.seqs)))
		ss.s.lim.Warn("refused", "sink refused readings for now; sending Nack BUSY", "device", r.st.dev, "readings", len(r.seqs), "err", r.err)
		ss.sendNack(fwpb.NackReason_NACK_REASON_BUSY, uint32(frame.TypeReadings), r.st.boot, r.seqs[0], "")
		return
	case r.err != nil && !r.stand:
		ss.rejected(r)
		return
	case r.err != nil:
		// Even the error readings standing in for rejected items were refused for
		// good: the items are acknowledged all the same, or the device would send them
		// for ever; after a hub restart the Ack may stall below them until the
		// device reboots.
		ss.s.log.Error("sink refused the error readings standing in for rejected items; acknowledging them anyway",
			"device", r.st.dev, "boot", fmt.Sprintf("%016x", r.st.boot), "seqs", len(r.seqs), "err", r.err)
	case !r.stand:
		m.items.WithLabelValues(itemCommitted).Add(float64(len(r.seqs)))
	}
	for _, q := range r.seqs {
		r.st.done(q)
	}
	r.st.ackDue = true
	ss.checkGap(r.st)
}

// rejected handles a batch the sink refused for good (a reading it can never take,
// such as a timestamp in the year 2201). Sending it again would be refused again, for
// ever, and hold up every item after it: its items are counted as rejected and stored
// as error readings in their place — value RejectedItemCode, the reason in the label,
// as an invalid item is — so that their sequences count as consumed in the store's
// dedupe state too; the Ack follows that commit.
func (ss *session) rejected(r result) {
	m := ss.s.m
	m.items.WithLabelValues(itemRejected).Add(float64(len(r.seqs)))
	ss.s.lim.Warn("rejected", "sink refused readings for good; storing error readings in their place and acknowledging them",
		"device", r.st.dev, "readings", len(r.seqs), "err", r.err)
	rs := make([]device.Reading, 0, len(r.seqs))
	label := labelOf("rejected: ", r.err)
	for _, q := range r.seqs {
		rs = append(rs, device.Reading{Device: r.st.dev, Kind: r.st.kind, Signal: device.SignalError, Value: RejectedItemCode,
			Label: label, Boot: r.st.boot, Seq: q})
	}
	r.st.inflight++
	ss.inflight++
	m.pending.Set(float64(ss.inflight))
	results, st, seqs := ss.s.results, r.st, r.seqs
	ss.sink.Submit(rs, func(err error) { results <- result{st: st, seqs: seqs, err: err, stand: true} })
}

// checkGap owes the device an Ack and, when items above a hole are committed and
// nothing of the boot is in flight, a Nack SEQ_GAP for the hole.
func (ss *session) checkGap(st *bootState) {
	if st.ackDue {
		ss.sendAck(st)
	}
	if st.nAbove > 0 && st.inflight == 0 && st.gapNack != st.contig+1 {
		if ss.sendNack(fwpb.NackReason_NACK_REASON_SEQ_GAP, 0, st.boot, st.contig+1, "") {
			st.gapNack = st.contig + 1
		}
	}
}

func (ss *session) sendAck(st *bootState) {
	st.ackDue = false
	st.acked = st.contig
	ss.ack.BootId, ss.ack.Seq = st.boot, st.contig
	ss.append(&ss.ack)
	ss.s.m.acks.Inc()
}

// sendNack queues a Nack unless the rate limit forbids; it reports whether it did.
func (ss *session) sendNack(reason fwpb.NackReason, refType uint32, boot, seq uint64, detail string) bool {
	if !ss.nackTok.take(time.Now()) {
		ss.s.m.nacksDrop.Inc()
		return false
	}
	ss.nack = fwpb.Nack{Reason: reason, RefType: refType, BootId: boot, Seq: seq, Detail: detail}
	if reason == fwpb.NackReason_NACK_REASON_BUSY {
		ss.nack.RetryAfterMs = busyRetryMs
	}
	ss.append(&ss.nack)
	ss.s.m.nacks.WithLabelValues(reasonLabel(reason)).Inc()
	return true
}

func reasonLabel(r fwpb.NackReason) string {
	const p = len("NACK_REASON_")
	s := r.String()
	if len(s) > p {
		s = s[p:]
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// nackVersion answers a frame of another framing version, at most once a second.
func (ss *session) nackVersion(f inFrame) {
	now := time.Now()
	if now.Sub(ss.verNack) < time.Second {
		return
	}
	ss.verNack = now
	if ss.sendNack(fwpb.NackReason_NACK_REASON_UNSUPPORTED_VERSION, uint32(f.typ), 0, 0, "") {
		ss.nack.RefVersion = uint32(f.version)
		// re-encode with the version set: replace the frame just queued
		ss.out = ss.out[:ss.last]
		ss.append(&ss.nack)
	}
}

// timeSync queues a TimeSync when the hub's clock is set.
func (ss *session) timeSync() {
	if ss.s.o.TimeSync < 0 {
		return
	}
	now := ss.s.o.Now()
	if now.Before(fwconv.ClockFloor) {
		return
	}
	ss.ts.UnixMs = now.UnixMilli()
	ss.append(&ss.ts)
}

func (ss *session) append(m proto.Message) {
	ss.last = len(ss.out)
	out, err := frame.AppendMessage(ss.out, m)
	if err != nil { // cannot happen: hub frames are small and of known types
		ss.s.log.Error("encoding a frame for the device", "err", err)
		return
	}
	ss.out = out
}

// flush writes the queued frames to the port.
func (ss *session) flush() error {
	if len(ss.out) == 0 {
		return nil
	}
	out := ss.out
	ss.out = ss.out[:0]
	if ss.w == nil {
		return nil
	}
	for len(out) > 0 {
		n, err := ss.w.Write(out)
		if err != nil {
			return fmt.Errorf("serial: write: %w", err)
		}
		out = out[n:]
	}
	return nil
}

// The Values of the error readings the hub stores in place of items it cannot store,
// so that their sequences are durably consumed: InvalidItemCode for an item it refused
// as invalid (Nack INVALID), RejectedItemCode for one the sink refused for good (the
// item is acknowledged).
const (
	InvalidItemCode  = -1
	RejectedItemCode = -2
)

func invalidLabel(err error) string { return labelOf("invalid item: ", err) }

// labelOf is prefix and the error's text, cut to a valid label.
func labelOf(prefix string, err error) string {
	l := prefix + err.Error()
	if len(l) > device.MaxLabelLen {
		l = l[:device.MaxLabelLen]
		for !utf8.ValidString(l) {
			l = l[:len(l)-1]
		}
	}
	return l
}
