package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Decoder turns one MQTT message into readings.
//
// Decode is a pure function of topic, payload, now and the decoder's configuration,
// which is immutable after construction: it keeps nothing of the message, so decoding
// the same message twice gives the same readings and the same error, and decoders are
// safe for concurrent use. What a decoder knows beyond its configuration (entities a
// household accepted, datatypes a Homie device announced) was learned by a Learner and
// handed over as a new value, never changed inside Decode. An optional callback (an
// adapter's OnAvailability) may be called from Decode: it reports, it keeps nothing.
//
// Decode returns ErrNotMine when the topic is not one the decoder understands, so a
// Router can try the next decoder; any other error means the message was the
// decoder's but could not be stored, and names what and where. Only a *FieldErrors
// comes with readings (those of the fields that could be read).
type Decoder interface {
	Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error)
}

// Learner learns from messages that describe devices rather than carry readings: Home
// Assistant discovery configs (hadiscovery), the $-attributes of Homie devices (homie).
// What it learned reaches decoders as a new value (copy-on-write), never by changing a
// decoder in the middle of a Decode.
//
// Learn returns ErrNotMine for a topic it does not learn from; any other error means
// the message was its own and could not be taken (ErrMalformed, ErrLimit). It yields no
// readings. Learners are safe for concurrent use.
type Learner interface {
	Learn(topic string, payload []byte, now time.Time) error
}

// Handler is what a source (the embedded broker, the external-broker source) hands each
// message to.
type Handler interface {
	Handle(topic string, payload []byte, now time.Time) ([]device.Reading, error)
}

// Adapters is the Handler sources use: a message is offered to each Learner in turn
// and, when none claims it, decoded by Decoder. It is the one place where learning
// happens; the decoders behind it stay pure.
type Adapters struct {
	Learners []Learner
	Decoder  Decoder
}

// Handle implements Handler: a message a learner takes yields no readings (nil, or the
// learner's error); any other is Decoder's.
func (a Adapters) Handle(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	for _, l := range a.Learners {
		if err := l.Learn(topic, payload, now); !errors.Is(err, ErrNotMine) {
			return nil, err
		}
	}
	if a.Decoder == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotMine, truncate(topic, 128))
	}
	return a.Decoder.Decode(topic, payload, now)
}

// Errors shared by the decoders.
var (
	// ErrNotMine means the topic belongs to no decoder.
	ErrNotMine = errors.New("topic not handled")
	// ErrMalformed wraps every payload error.
	ErrMalformed = errors.New("malformed payload")
	// ErrUnknownDevice means the topic names a device that no mapping or registration knows.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrLimit means a learner refused to keep more (devices, properties, proposals)
	// than its configured cap. The message that hit the cap is dropped; nothing held
	// is evicted.
	ErrLimit = errors.New("limit reached")
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

// Add records a field that could not be read.
func (fe *FieldErrors) Add(field string, err error) {
	fe.Fields = append(fe.Fields, FieldError{field, err})
}

// Result returns rs and fe, or nil for fe when no field failed.
func (fe *FieldErrors) Result(rs []device.Reading) ([]device.Reading, error) {
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

// Layered decodes a topic with Extra (a hadiscovery.State reading the accepted Home Assistant
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
			bad.Add("(payload)", err)
		}
	}
	return bad.Result(out)
}

// Reason names the result of a decoder or learner error in metrics: "unknown_device",
// "unknown_topic" (ErrNotMine), "limit", "malformed"; "ignored" for nil (a message
// with nothing to store). Every source counts by it.
func Reason(err error) string {
	switch {
	case err == nil:
		return "ignored"
	case errors.Is(err, ErrUnknownDevice):
		return "unknown_device"
	case errors.Is(err, ErrNotMine):
		return "unknown_topic"
	case errors.Is(err, ErrLimit):
		return "limit"
	}
	return "malformed"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
