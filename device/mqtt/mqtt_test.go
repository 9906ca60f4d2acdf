package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Every adapter folder keeps a sample.yaml that a test reads (adaptertest.CheckSample),
// and passes the conformance suite (adaptertest.Run); the external source keeps a
// sample too. A new adapter without them fails here.
func TestEveryAdapterConforms(t *testing.T) {
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == "internal" || d.Name() == "adaptertest" || d.Name() == "testdata" {
			continue
		}
		n++
		if _, err := os.Stat(filepath.Join(d.Name(), "sample.yaml")); err != nil {
			t.Errorf("%s: no sample.yaml: %v", d.Name(), err)
		}
		tests, _ := filepath.Glob(filepath.Join(d.Name(), "*_test.go"))
		var all []byte
		for _, f := range tests {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if !bytes.Contains(all, []byte("adaptertest.CheckSample(")) {
			t.Errorf("%s: no test reads sample.yaml (adaptertest.CheckSample)", d.Name())
		}
		if d.Name() != "external" && !bytes.Contains(all, []byte("adaptertest.Run(")) {
			t.Errorf("%s: the adapter does not run the conformance suite (adaptertest.Run)", d.Name())
		}
	}
	if n < 6 {
		t.Errorf("found %d adapter folders, want at least 6", n)
	}
}
