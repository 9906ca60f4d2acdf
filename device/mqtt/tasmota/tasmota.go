package tasmota

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// Options configures a Decoder. The zero value is Tasmota's default.
type Options struct {
	// FullTopics are the FullTopic settings in use, tried in order; each holds
	// %prefix% and %topic% once, as whole levels, and may hold %hostname% or %id%
	// (any one level) and literal levels, e.g. "tasmota/%topic%/%prefix%/".
	// Default: the Tasmota default "%prefix%/%topic%/". The prefixes are Tasmota's
	// defaults cmnd, stat and tele.
	FullTopics []string
	// OnAvailability, when set, is called from Decode for every tele/<topic>/LWT
	// message, once per mapping of that topic. It must not block.
	OnAvailability func(mqtt.Availability)
}

// Decoder decodes what Tasmota firmware publishes for the devices mapped with source
// "tasmota". A mapping's Name is the device's %topic% ("pow1"), or "<topic>/<sensor>"
// for one sensor object of a SENSOR payload ("ble-hub/LYWSD03-52680f") or one Zigbee
// device behind a Tasmota Zigbee bridge ("SonoffZB/door_sensor", by its Name, short
// address or ZbReceived key).
//
// Topics (shown with the default FullTopic):
//
//   - tele/<topic>/SENSOR (also tele/<topic>/<x>/SENSOR, as with ZbDeviceTopic):
//     every sensor object yields properties "<sensor>.<field>" in lower case
//     ("energy.power" W, "energy.total" kWh, "ds18b20.temperature", "am2301.humidity"),
//     matched in full and then by the field alone ("power", "total", "temperature");
//     a power or energy given per channel as an array is summed; a number written as
//     a string is read as the number. The battery level of one sensor object of a
//     topic mapped as a whole is labelled "<topic>/<sensor>". Top-level switches
//     ("Switch1":"ON") are properties "switch1". Temperatures follow TempUnit (F is
//     converted to °C). ZbReceived entries are read for their own mappings with
//     properties in lower case, where Zigbee "Power" (on/off) is "state", "ActivePower"
//     is "power" and "Contact" is 1 when open (the IAS zone alarm bit, as Tasmota
//     reports it). A message whose only devices are unmapped Zigbee devices is
//     mqtt.ErrUnknownDevice; unmapped ones beside mapped readings are skipped.
//   - tele/<topic>/STATE: POWER or POWER1 is property "relay", POWER<n> is "relay<n>"
//     ("ON"/"OFF" → 1/0).
//   - stat/<topic>/POWER, stat/<topic>/POWER<n>: the same properties, plain payload.
//   - tele/<topic>/LWT: "Online"/"Offline": no reading; reported through OnAvailability.
//   - cmnd/..., stat/<topic>/RESULT and STATUS*, other tele/ topics: nil, nil.
//
// A field that cannot be read is reported in a *mqtt.FieldErrors returned with the readings
// of the other fields.
//
// DeviceTime: Tasmota's "Time" is local time without a zone unless the device is set
// to send one. hearth uses "Epoch" (Unix seconds) when present, else "Time" when it
// carries an offset, else leaves DeviceTime zero for the hub to stamp.
//
// Decoder is immutable after New and safe for concurrent use.
type Decoder struct {
	patterns [][]string
	onAvail  func(mqtt.Availability)
	idx      map[string]*conv.Binding   // by mapping name
	topics   map[string][]*conv.Binding // by %topic%: the topic's mapping and its sensors'
}

// New returns a decoder for the mappings of source "tasmota" in ms (others are
// ignored). nil opts means defaults.
// DefaultOptions are the documented defaults: the one place they are written.
func DefaultOptions() Options { return Options{FullTopics: []string{mqtt.DefaultTasmotaFullTopic}} }

func New(ms mqtt.Mappings, opts *Options) (*Decoder, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if len(o.FullTopics) == 0 {
		o.FullTopics = DefaultOptions().FullTopics
	}
	t := &Decoder{onAvail: o.OnAvailability, topics: make(map[string][]*conv.Binding)}
	for _, ft := range o.FullTopics {
		p, err := parseFullTopic(ft)
		if err != nil {
			return nil, fmt.Errorf("mqtt tasmota: full topic %q: %v", ft, err)
		}
		t.patterns = append(t.patterns, p)
	}
	idx, err := conv.Index(ms, mqtt.SourceTasmota)
	if err != nil {
		return nil, err
	}
	t.idx = idx
	for _, name := range conv.SortedKeys(idx) {
		topic, _, _ := strings.Cut(name, "/")
		t.topics[topic] = append(t.topics[topic], idx[name])
	}
	return t, nil
}

func parseFullTopic(s string) ([]string, error) {
	if err := conv.CheckTopic(s); err != nil {
		return nil, err
	}
	levels := strings.Split(strings.TrimSuffix(s, "/"), "/")
	var np, nt int
	for _, l := range levels {
		switch l {
		case "%prefix%":
			np++
		case "%topic%":
			nt++
		case "%hostname%", "%id%":
		case "":
			return nil, errors.New("empty level")
		default:
			if strings.Contains(l, "%") {
				return nil, fmt.Errorf("level %q: tokens must fill a whole level", l)
			}
		}
	}
	if np != 1 || nt != 1 {
		return nil, errors.New("want %prefix% and %topic% once each")
	}
	return levels, nil
}

// match returns the prefix, %topic% and the rest of a topic.
func (t *Decoder) match(topic string) (prefix, dev, rest string, ok bool) {
	levels := strings.Split(topic, "/")
	for _, p := range t.patterns {
		if len(levels) <= len(p) {
			continue
		}
		prefix, dev, ok = "", "", true
		for i, l := range p {
			switch l {
			case "%prefix%":
				prefix = levels[i]
				ok = ok && (prefix == "cmnd" || prefix == "stat" || prefix == "tele")
			case "%topic%":
				dev = levels[i]
				ok = ok && dev != ""
			case "%hostname%", "%id%":
				ok = ok && levels[i] != ""
			default:
				ok = ok && levels[i] == l
			}
			if !ok {
				break
			}
		}
		if ok {
			return prefix, dev, strings.Join(levels[len(p):], "/"), true
		}
	}
	return "", "", "", false
}

// Decode implements mqtt.Decoder.
func (t *Decoder) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	prefix, dev, rest, ok := t.match(topic)
	if !ok {
		return nil, mqtt.ErrNotMine
	}
	if err := conv.CheckTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: tasmota: %v", mqtt.ErrMalformed, err)
	}
	var kind string // SENSOR, STATE, LWT, POWER
	switch prefix {
	case "tele":
		levels := strings.Split(rest, "/")
		last := levels[len(levels)-1]
		switch {
		case last == "SENSOR" && len(levels) <= 2:
			kind = last
		case (last == "STATE" || last == "LWT") && len(levels) == 1:
			kind = last
		}
	case "stat":
		if relayProp(rest) != "" {
			kind = "POWER"
		}
	}
	if kind == "" {
		return nil, nil // commands, RESULT, STATUS, INFO, ...
	}
	bs := t.topics[dev]
	if len(bs) == 0 {
		return nil, fmt.Errorf("%w: tasmota topic %q (MQTT topic %q)", mqtt.ErrUnknownDevice, conv.Truncate(dev, 128), conv.Truncate(topic, 128))
	}
	if err := conv.CheckPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: tasmota topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	if kind == "LWT" {
		return nil, t.lwt(topic, bs, payload, now)
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, nil
	}
	top := t.idx[dev]
	switch kind {
	case "POWER":
		if top == nil {
			return nil, nil
		}
		prop := relayProp(rest)
		sig, ok := top.Signal(prop)
		if !ok {
			return nil, nil
		}
		r, err := top.Reading(sig, conv.TextScalar(payload), "", false)
		if err != nil {
			return nil, fmt.Errorf("%w: tasmota topic %q: %s: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), prop, err)
		}
		return []device.Reading{r}, nil
	case "STATE":
		if top == nil {
			return nil, nil
		}
		return t.state(topic, top, payload)
	}
	return t.sensor(topic, dev, top, payload)
}

// relayProp names the relay of a POWER/POWER<n> command: "relay", "relay2", ...
func relayProp(cmd string) string {
	n, ok := strings.CutPrefix(cmd, "POWER")
	if !ok {
		return ""
	}
	if n == "" || n == "1" {
		return "relay"
	}
	if i, err := strconv.Atoi(n); err == nil && i >= 2 && i <= 32 && strconv.Itoa(i) == n {
		return "relay" + n
	}
	return ""
}

func (t *Decoder) lwt(topic string, bs []*conv.Binding, payload []byte, now time.Time) error {
	state := string(bytes.TrimSpace(payload))
	var online bool
	switch strings.ToLower(state) {
	case "online":
		online = true
	case "offline":
	default:
		return fmt.Errorf("%w: tasmota topic %q: LWT %q is not Online or Offline", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Truncate(state, 64))
	}
	for _, b := range bs {
		conv.Report(t.onAvail, mqtt.Availability{Source: mqtt.SourceTasmota, Name: b.Name, Device: b.Device, Online: online, State: state, At: now})
	}
	return nil
}

func (t *Decoder) state(topic string, b *conv.Binding, payload []byte) ([]device.Reading, error) {
	obj, err := conv.DecodeObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: tasmota topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	devTime := tasmotaTime(obj)
	var out []device.Reading
	bad := mqtt.FieldErrors{Topic: topic}
	for _, k := range conv.SortedKeys(obj) {
		prop := relayProp(k)
		if prop == "" {
			continue
		}
		sig, ok := b.Signal(prop)
		if !ok {
			continue
		}
		r, err := t.reading(b, prop, sig, obj[k], "")
		if errors.Is(err, conv.ErrSkip) {
			continue
		}
		if err != nil {
			bad.Add(k, err)
			continue
		}
		r.DeviceTime = devTime
		out = append(out, r)
	}
	return bad.Result(out)
}

// tasmotaSkip are SENSOR keys that are not sensors.
var tasmotaSkip = map[string]bool{"Time": true, "Epoch": true, "TempUnit": true, "PressureUnit": true,
	"SpeedUnit": true, "ZbInfo": true, "ZbState": true, "ZbResponse": true, "ZbSend": true, "IrReceived": true,
	"RfReceived": true, "LwReceived": true}

// zigbeeRenames turn Tasmota's Zigbee attribute names into hearth property names.
var zigbeeRenames = map[string]string{"power": "state", "activepower": "power", "batterypercentage": "battery"}

func (t *Decoder) sensor(topic, dev string, top *conv.Binding, payload []byte) ([]device.Reading, error) {
	obj, err := conv.DecodeObject(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: tasmota topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	devTime := tasmotaTime(obj)
	tempUnit := ""
	if raw, ok := obj["TempUnit"]; ok {
		if v, err := conv.JSONScalar(raw); err == nil && v.Type == 's' && (v.Str == "F" || v.Str == "C") {
			tempUnit = "°" + v.Str
		}
	}
	var (
		out      []device.Reading
		mapped   = top != nil
		unmapped []string
	)
	bad := mqtt.FieldErrors{Topic: topic}
	// add reads one field; sub, when set, names the sensor a battery level belongs to
	// (one sensor object of a hub mapped as a whole). A field that cannot be read is
	// recorded in bad and the others are still read.
	add := func(b *conv.Binding, prop, field, sub string, raw json.RawMessage) {
		sig, ok := b.Signal(prop)
		if !ok {
			return
		}
		unit := ""
		if sig == device.SignalTemperature {
			unit = tempUnit
		}
		r, err := t.reading(b, prop, sig, raw, unit)
		if errors.Is(err, conv.ErrSkip) {
			return
		}
		if err != nil {
			bad.Add(field, err)
			return
		}
		if sub != "" && sig == device.SignalBattery {
			r.Label = conv.Clip(sub, device.MaxLabelLen)
		}
		r.DeviceTime = devTime
		out = append(out, r)
	}
	for _, k := range conv.SortedKeys(obj) {
		if tasmotaSkip[k] {
			continue
		}
		raw := obj[k]
		if k == "ZbReceived" {
			subs, err := conv.DecodeObject(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: tasmota topic %q: ZbReceived: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
			}
			for _, sk := range conv.SortedKeys(subs) {
				fields, err := conv.DecodeObject(subs[sk])
				if err != nil {
					return nil, fmt.Errorf("%w: tasmota topic %q: ZbReceived %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Truncate(sk, 64), err)
				}
				b := t.zigbeeBinding(dev, sk, fields)
				if b == nil {
					unmapped = append(unmapped, zigbeeLabel(sk, fields))
					continue
				}
				mapped = true
				for _, f := range conv.SortedKeys(fields) {
					prop := strings.ToLower(f)
					if p, ok := zigbeeRenames[prop]; ok {
						prop = p
					}
					add(b, prop, "ZbReceived."+sk+"."+f, "", fields[f])
				}
			}
			continue
		}
		if v := bytes.TrimSpace(raw); len(v) > 0 && v[0] == '{' {
			fields, err := conv.DecodeObject(raw)
			if err != nil {
				return nil, fmt.Errorf("%w: tasmota topic %q: %s: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Truncate(k, 64), err)
			}
			b, prefix, sub := t.idx[dev+"/"+k], "", ""
			if b == nil {
				b, prefix, sub = top, strings.ToLower(k)+".", dev+"/"+k
			}
			if b == nil {
				continue
			}
			mapped = true
			for _, f := range conv.SortedKeys(fields) {
				add(b, prefix+strings.ToLower(f), k+"."+f, sub, fields[f])
			}
			continue
		}
		if top != nil {
			add(top, strings.ToLower(k), k, "", raw)
		}
	}
	if !mapped && len(unmapped) > 0 {
		return nil, fmt.Errorf("%w: tasmota topic %q: Zigbee device %s has no mapping (name it %q)", mqtt.ErrUnknownDevice,
			conv.Truncate(dev, 128), strings.Join(unmapped, ", "), dev+"/<Name>")
	}
	return bad.Result(out)
}

// zigbeeBinding finds the mapping of a ZbReceived entry by its Name, its short address
// or its key.
func (t *Decoder) zigbeeBinding(dev, key string, fields map[string]json.RawMessage) *conv.Binding {
	for _, f := range []string{"Name", "Device"} {
		if v, err := conv.JSONScalar(fields[f]); err == nil && v.Type == 's' {
			if n := strings.TrimSpace(v.Str); n != "" {
				if b := t.idx[dev+"/"+n]; b != nil {
					return b
				}
			}
		}
	}
	return t.idx[dev+"/"+key]
}

func zigbeeLabel(key string, fields map[string]json.RawMessage) string {
	if v, err := conv.JSONScalar(fields["Name"]); err == nil && v.Type == 's' && strings.TrimSpace(v.Str) != "" {
		return strconv.Quote(conv.Truncate(strings.TrimSpace(v.Str), 64)) + " (" + conv.Truncate(key, 32) + ")"
	}
	return strconv.Quote(conv.Truncate(key, 64))
}

// reading converts one Tasmota JSON value; per-channel arrays of power or energy are
// summed.
func (t *Decoder) reading(b *conv.Binding, prop string, sig device.Signal, raw json.RawMessage, unit string) (device.Reading, error) {
	if v := bytes.TrimSpace(raw); len(v) > 0 && v[0] == '[' && (sig == device.SignalPower || sig == device.SignalEnergy) {
		var chans []json.RawMessage
		if err := json.Unmarshal(v, &chans); err != nil || len(chans) == 0 || len(chans) > 32 {
			return device.Reading{}, fmt.Errorf("%s: want a number or an array of 1..32 numbers", prop)
		}
		sum := 0.0
		for _, c := range chans {
			s, err := conv.JSONScalar(c)
			if err != nil {
				return device.Reading{}, err
			}
			if s.Type != 'n' {
				return device.Reading{}, fmt.Errorf("%s: channel value %s is not a number", prop, s)
			}
			sum += s.Num
		}
		return b.Reading(sig, conv.Scalar{Type: 'n', Num: sum}, unit, false)
	}
	v, err := conv.JSONScalar(raw)
	if err != nil {
		return device.Reading{}, err
	}
	return b.Reading(sig, v, unit, true) // "Temperature":"21.5" is 21.5
}

// tasmotaTime returns a trustworthy device time: Epoch, or Time with a zone offset.
func tasmotaTime(obj map[string]json.RawMessage) time.Time {
	if v, err := conv.JSONScalar(obj["Epoch"]); err == nil && v.Type == 'n' && v.Num > 0 && v.Num < 1e11 {
		return time.Unix(int64(v.Num), 0)
	}
	if v, err := conv.JSONScalar(obj["Time"]); err == nil && v.Type == 's' {
		if t, err := time.Parse(time.RFC3339, v.Str); err == nil {
			return t
		}
	}
	return time.Time{}
}
