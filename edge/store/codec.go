package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// eventVersion is the first byte of every encoded event (FORMAT.md, "events").
const eventVersion = 1

// appendReading appends the binary encoding of r to dst.
func appendReading(dst []byte, r *device.Reading) []byte {
	dst = append(dst, eventVersion)
	dst = appendString(dst, r.Device)
	dst = appendString(dst, string(r.Kind))
	dst = appendString(dst, string(r.Signal))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.Value))
	dst = appendString(dst, r.Unit)
	dst = appendString(dst, r.Label)
	dst = binary.AppendVarint(dst, r.Aux)
	dst = binary.AppendUvarint(dst, r.Boot)
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = binary.AppendVarint(dst, unixNano(r.DeviceTime))
	dst = binary.AppendVarint(dst, unixNano(r.HubTime))
	return dst
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ErrCorruptEvent is returned when an event record cannot be decoded.
var ErrCorruptEvent = errors.New("corrupt event record")

type decoder struct {
	b    []byte
	err  error
	skip bool // check the strings' lengths only: make none
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrCorruptEvent
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrCorruptEvent
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(intern map[string]string) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = ErrCorruptEvent
		return ""
	}
	raw := d.b[:n]
	d.b = d.b[n:]
	if d.skip {
		return ""
	}
	if intern != nil {
		if s, ok := intern[string(raw)]; ok { // no allocation for the lookup
			return s
		}
		s := string(raw)
		if len(intern) < 4096 {
			intern[s] = s
		}
		return s
	}
	return string(raw)
}

// decodeReading decodes an event record. intern, when not nil, de-duplicates the
// strings of repeated device ids, kinds and signals.
func decodeReading(b []byte, r *device.Reading, intern map[string]string) error {
	if len(b) == 0 || b[0] != eventVersion {
		return fmt.Errorf("%w: unknown version", ErrCorruptEvent)
	}
	d := decoder{b: b[1:]}
	r.Device = d.str(intern)
	r.Kind = device.Kind(d.str(intern))
	r.Signal = device.Signal(d.str(intern))
	if d.err == nil {
		if len(d.b) < 8 {
			d.err = ErrCorruptEvent
		} else {
			r.Value = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
			d.b = d.b[8:]
		}
	}
	r.Unit = d.str(intern)
	r.Label = d.str(intern)
	r.Aux = d.varint()
	r.Boot = d.uvarint()
	r.Seq = d.uvarint()
	r.DeviceTime = fromUnixNano(d.varint())
	r.HubTime = fromUnixNano(d.varint())
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the record", ErrCorruptEvent, len(d.b))
	}
	return d.err
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// checkEvent reports whether b is an event record, exactly, as decodeReading reads
// one, without making its strings or a Reading: the check at Open reads every
// event of the log (TestCheckEventAgreesWithDecode keeps the two in step).
func checkEvent(b []byte) error {
	if len(b) == 0 || b[0] != eventVersion {
		return fmt.Errorf("%w: unknown version", ErrCorruptEvent)
	}
	at := 1
	// varint skips one (u)varint at b[at:]; str skips a length-prefixed string.
	varint := func() bool {
		for i := 0; i < binary.MaxVarintLen64 && at+i < len(b); i++ {
			if b[at+i] < 0x80 {
				if i == binary.MaxVarintLen64-1 && b[at+i] > 1 {
					return false // overflows 64 bits, as binary.Uvarint says
				}
				at += i + 1
				return true
			}
		}
		return false
	}
	str := func() bool {
		start := at
		if !varint() {
			return false
		}
		n, _ := binary.Uvarint(b[start:at])
		if n > uint64(len(b)-at) {
			return false
		}
		at += int(n)
		return true
	}
	ok := str() && str() && str() // device, kind, signal
	if ok && len(b)-at >= 8 {
		at += 8 // value
	} else {
		ok = false
	}
	ok = ok && str() && str() && varint() && varint() && varint() && varint() && varint() // unit, label, aux, boot, seq, times
	switch {
	case !ok:
		return ErrCorruptEvent
	case at != len(b):
		return fmt.Errorf("%w: %d bytes after the record", ErrCorruptEvent, len(b)-at)
	}
	return nil
}

// seqOf decodes an 8-byte big-endian key (u64key).
func seqOf(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
