package adaptertest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
)

// Check decodes one message twice and asserts what every decoder promises, whatever the
// message (the suite runs it on real and hostile messages; the fuzz targets on theirs):
//
//   - no panic;
//   - an error is of a documented class (mqtt.ErrNotMine, ErrMalformed,
//     ErrUnknownDevice, ErrLimit), so that a source can count and answer it;
//   - readings come only without an error or with a *mqtt.FieldErrors naming at least
//     one field;
//   - every reading passes device.Reading.Validate, and none carries a hub time;
//   - the payload is left as it was;
//   - decoding it again gives the same readings and the same error: Decode is a pure
//     function of (topic, payload, now) and the decoder's configuration.
//
// It returns the first result.
func Check(t testing.TB, d mqtt.Decoder, topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	t.Helper()
	orig := bytes.Clone(payload)
	rs, err := decode(t, d, topic, payload, now)
	if !bytes.Equal(orig, payload) {
		t.Fatalf("topic %q: Decode changed its payload", topic)
	}
	checkResult(t, topic, rs, err)
	rs2, err2 := decode(t, d, topic, payload, now)
	if !reflect.DeepEqual(rs, rs2) || errString(err) != errString(err2) {
		t.Fatalf("topic %q payload %q: decoded twice, the results differ:\n%+v, %v\n%+v, %v", topic, clip(payload), rs, err, rs2, err2)
	}
	return rs, err
}

// CheckLearn offers one message to a learner and asserts that it does not panic, that
// its error is of a documented class (ErrNotMine for a topic it does not learn from)
// and that it leaves the payload as it was.
func CheckLearn(t testing.TB, l mqtt.Learner, topic string, payload []byte, now time.Time) error {
	t.Helper()
	orig := bytes.Clone(payload)
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Learn(%q, %q) panicked: %v", topic, clip(payload), p)
			}
		}()
		err = l.Learn(topic, payload, now)
	}()
	if !bytes.Equal(orig, payload) {
		t.Fatalf("topic %q: Learn changed its payload", topic)
	}
	if err != nil && !classified(err) {
		t.Fatalf("Learn(%q, %q): error of no documented class: %v", topic, clip(payload), err)
	}
	var fe *mqtt.FieldErrors
	if errors.As(err, &fe) {
		t.Fatalf("Learn(%q): a learner reads no fields, but returned %v", topic, err)
	}
	return err
}

func decode(t testing.TB, d mqtt.Decoder, topic string, payload []byte, now time.Time) (rs []device.Reading, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Decode(%q, %q) panicked: %v", topic, clip(payload), p)
		}
	}()
	return d.Decode(topic, payload, now)
}

func checkResult(t testing.TB, topic string, rs []device.Reading, err error) {
	t.Helper()
	if err != nil {
		if !classified(err) {
			t.Fatalf("topic %q: error of no documented class: %v", topic, err)
		}
		var fe *mqtt.FieldErrors
		if errors.As(err, &fe) && len(fe.Fields) == 0 {
			t.Fatalf("topic %q: FieldErrors without fields: %v", topic, err)
		}
		if rs != nil && fe == nil {
			t.Fatalf("topic %q: readings %+v returned with error %v", topic, rs, err)
		}
	}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			t.Fatalf("topic %q: reading %d invalid: %v", topic, i, err)
		}
		if !rs[i].HubTime.IsZero() {
			t.Fatalf("topic %q: reading %d has a hub time: ingest stamps it, not a decoder", topic, i)
		}
	}
}

func classified(err error) bool {
	return errors.Is(err, mqtt.ErrNotMine) || errors.Is(err, mqtt.ErrMalformed) ||
		errors.Is(err, mqtt.ErrUnknownDevice) || errors.Is(err, mqtt.ErrLimit)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func clip(p []byte) string {
	if len(p) > 200 {
		return fmt.Sprintf("%s… (%d bytes)", p[:200], len(p))
	}
	return string(p)
}
