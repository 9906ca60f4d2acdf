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
