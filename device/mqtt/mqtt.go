package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Decoder turns one MQTT message into readings. Implementations are pure (no I/O) and
// safe for concurrent use unless they say otherwise.
//
// Decode returns ErrNotMine when the topic is not one the decoder understands, so a
// Router can try the next decoder; any other error means the message was the
// decoder's but malformed, and names what and where.
type Decoder interface {
	Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error)
}

// Errors shared by the decoders.
var (
	// ErrNotMine means the topic belongs to no decoder.
	ErrNotMine = errors.New("topic not handled")
	// ErrMalformed wraps every payload error.
	ErrMalformed = errors.New("malformed payload")
	// ErrUnknownDevice means the topic names a device that no mapping or registration knows.
	ErrUnknownDevice = errors.New("unknown device")
)

// FieldErrors reports the fields of a message that could not be read while others
// could: Decode returns it together with the readings of the others, which a caller
// that knows it stores (counting the fields); a caller that does not refuses the
// message as malformed, since FieldErrors wraps ErrMalformed.
type FieldErrors struct {
	Topic  string
	Fields []FieldError
}

// FieldError is one field that could not be read.
type FieldError struct {
	Field string // the payload's name for it: "temperature", "ENERGY.Power", "ZbReceived.0x1234.Contact"
	Err   error
}

func (fe *FieldErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: topic %q: ", ErrMalformed, truncate(fe.Topic, 128))
	for i, f := range fe.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "field %q: %v", truncate(f.Field, 64), f.Err)
	}
	b.WriteString(" (the other fields were read)")
	return b.String()
}

// Unwrap makes errors.Is(fe, ErrMalformed) hold.
func (fe *FieldErrors) Unwrap() error { return ErrMalformed }

// add records a field that could not be read.
func (fe *FieldErrors) add(field string, err error) {
	fe.Fields = append(fe.Fields, FieldError{field, err})
}

// result returns rs and fe, or nil for fe when no field failed.
func (fe *FieldErrors) result(rs []device.Reading) ([]device.Reading, error) {
	if len(fe.Fields) == 0 {
		return rs, nil
	}
	return rs, fe
}

// Router tries decoders in order and returns the first answer that is not ErrNotMine.
type Router []Decoder

// Decode implements Decoder.
func (rt Router) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	for _, d := range rt {
		rs, err := d.Decode(topic, payload, now)
		if errors.Is(err, ErrNotMine) {
			continue
		}
		return rs, err
	}
	return nil, fmt.Errorf("%w: %q", ErrNotMine, truncate(topic, 128))
}

// Layered decodes a topic with Extra (an HAState reading the accepted Home Assistant
// entities) and with Base (a Router of the configured adapters), so that an entity
// accepted on a topic a configured mapping also reads (a Zigbee2MQTT device's state
// topic) adds to that mapping instead of hiding it:
//
//   - a topic Extra does not claim (ErrNotMine) is Base's alone;
//   - a topic Base does not claim, or whose device it does not know
//     (ErrUnknownDevice), is Extra's alone;
//   - otherwise both are read: Base's readings, then those of Extra for a device
//     and signal Base did not give (the configured mapping wins; nothing is stored
//     twice). When one of them fails and the other gave readings, the failure is
//     reported as a *FieldErrors beside them.
type Layered struct {
	Base, Extra Decoder
}

// Decode implements Decoder.
func (l Layered) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	xs, xerr := l.Extra.Decode(topic, payload, now)
	if errors.Is(xerr, ErrNotMine) {
		return l.Base.Decode(topic, payload, now)
	}
	bs, berr := l.Base.Decode(topic, payload, now)
	if errors.Is(berr, ErrNotMine) || errors.Is(berr, ErrUnknownDevice) {
		return xs, xerr
	}
	type key struct {
		dev string
		sig device.Signal
	}
	have := make(map[key]bool, len(bs))
	for i := range bs {
		have[key{bs[i].Device, bs[i].Signal}] = true
	}
	out := bs
	for i := range xs {
		if !have[key{xs[i].Device, xs[i].Signal}] {
			out = append(out, xs[i])
		}
	}
	bad := FieldErrors{Topic: topic}
	for _, err := range []error{berr, xerr} {
		var fe *FieldErrors
		switch {
		case err == nil:
		case errors.As(err, &fe):
			bad.Fields = append(bad.Fields, fe.Fields...)
		default:
			if len(out) == 0 {
				return nil, err
			}
			bad.add("(payload)", err)
		}
	}
	return bad.result(out)
}

// NativePrefix is the root of hearth's own topic schema: hearth/v1/<device>/readings.
const NativePrefix = "hearth/v1/"

// NativeTopic returns the topic a device publishes its readings to.
func NativeTopic(deviceID string) string { return NativePrefix + deviceID + "/readings" }

// NativeDeviceFromTopic returns the device id of a native topic, or "" if the topic is
// not native.
func NativeDeviceFromTopic(topic string) string {
	rest, ok := strings.CutPrefix(topic, NativePrefix)
	if !ok {
		return ""
	}
	id, tail, ok := strings.Cut(rest, "/")
	if !ok || tail != "readings" {
		return ""
	}
	return id
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
