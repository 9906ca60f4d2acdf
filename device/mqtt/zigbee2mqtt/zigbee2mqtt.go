package zigbee2mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// Options configures a Decoder. The zero value is the
// Zigbee2MQTT default.
type Options struct {
	// BaseTopic is Zigbee2MQTT's mqtt.base_topic. Default "zigbee2mqtt".
	BaseTopic string
	// AttributeOutput decodes the per-attribute topics Zigbee2MQTT publishes with
	// advanced.output "attribute" (<base>/<name>/<property>, plain payload). Leave it
	// false with the default output "json" and with "attribute_and_json", where the
	// same values also arrive as JSON and would be counted twice; attribute topics of
	// mapped devices are then ignored (nil readings, nil error).
	AttributeOutput bool
	// OnAvailability, when set, is called from Decode for every
	// <base>/<name>/availability message of a mapped device. It must not block.
	OnAvailability func(mqtt.Availability)
}

// Decoder decodes what Zigbee2MQTT publishes for the devices mapped with source
// "zigbee2mqtt", whose Name is the friendly_name (which may contain '/').
//
// Topics under the base topic:
//
//   - <base>/<name>: the JSON state object. Properties (payload keys) become readings
//     through the mapping's Signals or mqtt.DefaultSignals of its kind. contact=true means
//     the magnet is present (closed): contact is turned into door value 1 when open,
//     0 when closed. state "ON"/"OFF" and occupancy true/false become 1/0.
//     temperature °C, humidity %, power W, energy kWh and battery % keep their values.
//     A number written as a string ("temperature":"21.5", as some Tuya devices send
//     it) is read as the number. linkquality and properties no signal names are
//     ignored; null values are skipped. A property that cannot be read (a word where
//     a number is expected) is reported in a *mqtt.FieldErrors returned with the
//     readings of the others.
//     last_seen, when it carries a zone (ISO_8601) or is epoch milliseconds, becomes
//     DeviceTime (Zigbee2MQTT stamps it when it heard the device); ISO_8601_local
//     (no zone) is ignored.
//   - <base>/<name>/availability: "online"/"offline" or {"state":"online"}: no
//     reading; reported through OnAvailability.
//   - <base>/bridge/..., and any topic with a /set or /get level: Zigbee2MQTT's own
//     topics and commands to devices: nil readings and nil error.
//   - an empty payload (a retained message being cleared): nil, nil.
//
// A name with no mapping is mqtt.ErrUnknownDevice; a topic outside the base is mqtt.ErrNotMine.
// Decoder is immutable after New and safe for concurrent use.
type Decoder struct {
	base    string
	attr    bool
	onAvail func(mqtt.Availability)
	idx     map[string]*conv.Binding
}

// New returns a decoder for the mappings of source "zigbee2mqtt" in ms
// (others are ignored). nil opts means defaults.
// DefaultOptions are the documented defaults: the one place they are written.
func DefaultOptions() Options { return Options{BaseTopic: mqtt.DefaultZigbee2MQTTBase} }

func New(ms mqtt.Mappings, opts *Options) (*Decoder, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.BaseTopic == "" {
		o.BaseTopic = DefaultOptions().BaseTopic
	}
	if err := conv.CheckBase(o.BaseTopic); err != nil {
		return nil, fmt.Errorf("mqtt zigbee2mqtt: base topic: %v", err)
	}
	idx, err := conv.Index(ms, mqtt.SourceZigbee2MQTT)
	if err != nil {
		return nil, err
	}
	return &Decoder{base: o.BaseTopic, attr: o.AttributeOutput, onAvail: o.OnAvailability, idx: idx}, nil
}

// Decode implements mqtt.Decoder.
func (z *Decoder) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	rest, ok := strings.CutPrefix(topic, z.base+"/")
	if !ok {
		return nil, mqtt.ErrNotMine
	}
	if err := conv.CheckTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: zigbee2mqtt: %v", mqtt.ErrMalformed, err)
	}
	if rest == "" {
		return nil, fmt.Errorf("%w: zigbee2mqtt topic %q: no device name", mqtt.ErrMalformed, topic)
	}
	if rest == "bridge" || strings.HasPrefix(rest, "bridge/") {
		return nil, nil
	}
	levels := strings.Split(rest, "/")
	for _, l := range levels[1:] {
		if l == "set" || l == "get" {
			return nil, nil
		}
	}
	if err := conv.CheckPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: zigbee2mqtt topic %q: %v", mqtt.ErrMalformed, topic, err)
	}
	if name, ok := strings.CutSuffix(rest, "/availability"); ok {
		return nil, z.availability(topic, name, payload, now)
	}
	if b := z.idx[rest]; b != nil {
		return z.state(topic, b, payload)
	}
	if i := strings.LastIndexByte(rest, '/'); i > 0 {
		if b := z.idx[rest[:i]]; b != nil {
			if !z.attr {
				return nil, nil
			}
			return z.attribute(topic, b, rest[i+1:], payload)
		}
	}
	return nil, fmt.Errorf("%w: zigbee2mqtt friendly_name %q (topic %q)", mqtt.ErrUnknownDevice, conv.Truncate(rest, 128), conv.Truncate(topic, 128))
}

func (z *Decoder) availability(topic, name string, payload []byte, now time.Time) error {
	b := z.idx[name]
	if b == nil {
		return fmt.Errorf("%w: zigbee2mqtt friendly_name %q (topic %q)", mqtt.ErrUnknownDevice, conv.Truncate(name, 128), conv.Truncate(topic, 128))
	}
	p := bytes.TrimSpace(payload)
	state := string(p)
	if len(p) > 0 && p[0] == '{' {
		var v struct {
			State *string `json:"state"`
		}
		if err := json.Unmarshal(p, &v); err != nil || v.State == nil {
			return fmt.Errorf("%w: zigbee2mqtt topic %q: availability %q: want online/offline or {\"state\":\"online\"}", mqtt.ErrMalformed, topic, conv.Truncate(state, 64))
		}
		state = *v.State
	}
	var online bool
	switch state {
	case "online":
		online = true
	case "offline":
	default:
		return fmt.Errorf("%w: zigbee2mqtt topic %q: availability %q is not online or offline", mqtt.ErrMalformed, topic, conv.Truncate(state, 64))
	}
	conv.Report(z.onAvail, mqtt.Availability{Source: mqtt.SourceZigbee2MQTT, Name: name, Device: b.Device, Online: online, State: state, At: now})
	return nil
}

func (z *Decoder) state(topic string, b *conv.Binding, payload []byte) ([]device.Reading, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, nil
	}
	obj, err := conv.DecodeObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: zigbee2mqtt topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	var devTime time.Time
	if raw, ok := obj["last_seen"]; ok {
		devTime = z2mLastSeen(raw)
	}
	var (
		out []device.Reading
		bad = mqtt.FieldErrors{Topic: topic}
	)
	for _, prop := range b.Props {
		raw, ok := obj[prop]
		if !ok {
			continue
		}
		v, err := conv.JSONScalar(raw)
		if err == nil {
			var r device.Reading
			r, err = z2mReading(b, prop, b.Table[prop], v)
			if err == nil {
				r.DeviceTime = devTime
				out = append(out, r)
				continue
			}
		}
		if errors.Is(err, conv.ErrSkip) {
			continue
		}
		bad.Add(prop, err) // the other properties are still read
	}
	return bad.Result(out)
}

func (z *Decoder) attribute(topic string, b *conv.Binding, prop string, payload []byte) ([]device.Reading, error) {
	prop = strings.ToLower(prop)
	sig, ok := b.Signal(prop)
	if !ok || len(bytes.TrimSpace(payload)) == 0 {
		return nil, nil
	}
	r, err := z2mReading(b, prop, sig, conv.TextScalar(payload))
	if errors.Is(err, conv.ErrSkip) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: zigbee2mqtt topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	return []device.Reading{r}, nil
}

// z2mReading applies Zigbee2MQTT's conventions to one property value.
func z2mReading(b *conv.Binding, prop string, sig device.Signal, v conv.Scalar) (device.Reading, error) {
	if prop == "contact" && v.Type != 'z' {
		if v.Type != 'b' {
			return device.Reading{}, fmt.Errorf("contact %s: want true (closed) or false (open)", v)
		}
		v.Bool = !v.Bool // contact=true: magnet present, door closed
	}
	// Some devices (Tuya, a few ESPHome builds) send numbers as strings: "21.5".
	return b.Reading(sig, v, "", true)
}

// z2mLastSeen reads last_seen in the ISO_8601 (with zone) or epoch (ms) formats.
func z2mLastSeen(raw json.RawMessage) time.Time {
	v, err := conv.JSONScalar(raw)
	if err != nil {
		return time.Time{}
	}
	switch v.Type {
	case 's':
		t, err := time.Parse(time.RFC3339Nano, v.Str)
		if err == nil {
			return t
		}
	case 'n':
		if v.Num > 0 && v.Num < 1e15 {
			return time.UnixMilli(int64(v.Num))
		}
	}
	return time.Time{}
}
