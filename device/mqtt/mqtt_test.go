package mqtt

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// learnerFunc and decoderFunc adapt functions to the interfaces.
type learnerFunc func(topic string) error

func (f learnerFunc) Learn(topic string, _ []byte, _ time.Time) error { return f(topic) }

type decoderFunc func(topic string) ([]device.Reading, error)

func (f decoderFunc) Decode(topic string, _ []byte, _ time.Time) ([]device.Reading, error) {
	return f(topic)
}

// A message a learner takes never reaches the decoder, with the learner's error; one
// every learner leaves is the decoder's.
func TestAdaptersLearnersFirst(t *testing.T) {
	var decoded []string
	a := Adapters{
		Learners: []Learner{
			learnerFunc(func(topic string) error {
				switch topic {
				case "cfg/ok":
					return nil
				case "cfg/full":
					return fmt.Errorf("%w: 3 held", ErrLimit)
				}
				return ErrNotMine
			}),
			learnerFunc(func(topic string) error {
				if topic == "attr/x" {
					return nil
				}
				return ErrNotMine
			}),
		},
		Decoder: decoderFunc(func(topic string) ([]device.Reading, error) {
			decoded = append(decoded, topic)
			return []device.Reading{{Device: "d", Kind: device.KindSensor, Signal: device.SignalPower, Value: 1}}, nil
		}),
	}
	for _, tc := range []struct {
		topic    string
		readings int
		err      error
	}{
		{"cfg/ok", 0, nil},
		{"cfg/full", 0, ErrLimit},
		{"attr/x", 0, nil},
		{"value/x", 1, nil},
	} {
		rs, err := a.Handle(tc.topic, nil, time.Time{})
		if len(rs) != tc.readings || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %d readings, %v; want %d, %v", tc.topic, len(rs), err, tc.readings, tc.err)
		}
	}
	if len(decoded) != 1 || decoded[0] != "value/x" {
		t.Errorf("decoder saw %v, want only value/x", decoded)
	}
	if _, err := (Adapters{}).Handle("x", nil, time.Time{}); !errors.Is(err, ErrNotMine) {
		t.Errorf("Adapters without a decoder: %v, want ErrNotMine", err)
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                     "ignored",
		fmt.Errorf("%w: x", ErrUnknownDevice):   "unknown_device",
		ErrNotMine:                              "unknown_topic",
		fmt.Errorf("%w: 257 devices", ErrLimit): "limit",
		&FieldErrors{Fields: []FieldError{{Field: "t"}}}: "malformed",
		errors.New("anything else"):                      "malformed",
	} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
