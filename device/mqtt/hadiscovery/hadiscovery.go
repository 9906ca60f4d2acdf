package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
)

// Proposal is what hearth learned from one Home Assistant MQTT discovery config: a
// suggested Mapping for the entity and how to read its state topic. A household (or
// an installer) accepts it by adding the Mapping, possibly corrected, to the
// configuration under the same Name; HAState then turns the entity's states into
// readings.
type Proposal struct {
	// Mapping is the suggestion: Source "homeassistant", Name the entity's unique_id
	// (else "<node_id>/<object_id>" or "<object_id>"), Device an id derived from the
	// device or entity name, Kind and Signals guessed (see Reason).
	Mapping Mapping
	// Property is the Signals key of the entity: the value_json path the template
	// reads ("contact", "update.state"), else the device_class, else the component.
	Property string
	// Signal is the signal guessed for the entity from its component, device_class,
	// unit and names. HAState uses it when an accepted Mapping has no Signals.
	Signal device.Signal
	// Reason says in words why Kind and Signal were guessed.
	Reason string
	// Problem, when not empty, says why HAState cannot read this entity (an
	// unsupported value_template); it is still listed so a person can see it.
	Problem string

	ConfigTopic string // homeassistant/<component>/[<node_id>/]<object_id>/config
	Component   string // binary_sensor, sensor or switch
	NodeID      string
	ObjectID    string
	UniqueID    string
	EntityName  string // name
	DeviceClass string // device_class
	Unit        string // unit_of_measurement

	StateTopic    string // state_topic, with ~ expanded
	ValueTemplate string // value_template as given
	PayloadOn     string // binary_sensor payload_on / switch state_on (JSON true/false become "true"/"false")
	PayloadOff    string

	AvailabilityTopic   string // availability_topic or the first availability entry
	PayloadAvailable    string // default "online"
	PayloadNotAvailable string // default "offline"

	DeviceName   string   // device.name
	Model        string   // device.model
	Manufacturer string   // device.manufacturer
	Identifiers  []string // device.identifiers (at most 4 kept)
}

func (p Proposal) clone() Proposal {
	p.Mapping.Signals = maps.Clone(p.Mapping.Signals)
	p.Identifiers = slices.Clone(p.Identifiers)
	return p
}

// DiscoveryOptions configures a Discovery. Zero fields take the defaults shown.
type DiscoveryOptions struct {
	// Prefix is Home Assistant's discovery_prefix. Default "homeassistant".
	Prefix string
	// MaxProposals caps the proposals held. Default 256.
	MaxProposals int
	// OnChange, when set, is called from Decode (outside the lock) after a proposal
	// was added, changed or removed, e.g. to rebuild an HAState from Accepted.
	// It must not block.
	OnChange func()
	// Known are proposals learned before (persisted by OnProposal), held from the
	// start: a firmware that does not retain its discovery config announces it only
	// when it starts or Home Assistant does, which may be long after hearth restarts.
	// Those beyond MaxProposals (by config topic) are dropped.
	Known []Proposal
	// OnProposal, when set, is called from Decode (outside the lock) with the config
	// topic of each proposal added or changed, and with nil when one was removed (an
	// empty config), so that it can be persisted. A config received again unchanged
	// (a retained one, on every reconnect) calls nothing. It should be quick.
	OnProposal func(configTopic string, p *Proposal)
}

// Discovery learns devices from Home Assistant MQTT discovery configs
// (<prefix>/<component>/[<node_id>/]<object_id>/config), which Zigbee2MQTT, Tasmota,
// ESPHome and many other firmwares publish, retained. It never yields readings:
// Decode returns nil readings for a config topic and keeps a Proposal for every
// binary_sensor, sensor and switch whose state can become a hearth signal (door,
// motion, power, energy, temperature, humidity, battery, on/off); other components
// and entities with no hearth signal (link quality, firmware update, ...) are
// ignored. An empty payload removes the entity's proposal, as it removes the entity
// in Home Assistant.
//
// Config keys may be abbreviated (stat_t, dev_cla, val_tpl, uniq_id, dev, ids, mdl,
// mf, ...), and topics may use the "~" base. Kind is guessed from the entity, device
// and model names (fridge, freezer, washer, dishwasher, oven, ... also front door,
// cabinet, motion, plug), then from the device_class; Reason explains the guess.
//
// Topics under the prefix that are not config topics are ErrNotMine (state topics
// there belong to HAState). A config whose JSON is broken or whose keys have the
// wrong types is ErrMalformed; a new proposal beyond MaxProposals is ErrLimit.
// Discovery is safe for concurrent use.
type Discovery struct {
	prefix     string
	max        int
	onChange   func()
	onProposal func(string, *Proposal)

	mu        sync.Mutex
	proposals map[string]Proposal // by config topic
}

// NewDiscovery returns an empty Discovery. nil opts means defaults.
func NewDiscovery(opts *DiscoveryOptions) (*Discovery, error) {
	var o DiscoveryOptions
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = "homeassistant"
	}
	if o.MaxProposals <= 0 {
		o.MaxProposals = 256
	}
	if err := checkBase(o.Prefix); err != nil {
		return nil, fmt.Errorf("mqtt homeassistant: discovery prefix: %v", err)
	}
	d := &Discovery{prefix: o.Prefix, max: o.MaxProposals, onChange: o.OnChange, onProposal: o.OnProposal,
		proposals: make(map[string]Proposal)}
	known := slices.Clone(o.Known)
	slices.SortFunc(known, func(a, b Proposal) int { return strings.Compare(a.ConfigTopic, b.ConfigTopic) })
	for _, p := range known {
		if len(d.proposals) >= d.max {
			break
		}
		if p.ConfigTopic != "" {
			d.proposals[p.ConfigTopic] = p.clone()
		}
	}
	return d, nil
}

// Proposals returns a copy of the proposals held, sorted by config topic.
func (d *Discovery) Proposals() []Proposal {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Proposal, 0, len(d.proposals))
	for _, k := range sortedKeys(d.proposals) {
		out = append(out, d.proposals[k].clone())
	}
	return out
}

// Accepted returns the proposals whose Name is mapped in ms (source
// "homeassistant"), each with its Mapping replaced by the configured one: the input
// of NewHAState and HAState.Replace.
func (d *Discovery) Accepted(ms Mappings) []Proposal {
	byName := make(map[string]Mapping)
	for _, m := range ms {
		if m.Source == SourceHomeAssistant {
			byName[m.Name] = m
		}
	}
	var out []Proposal
	for _, p := range d.Proposals() {
		if m, ok := byName[p.Mapping.Name]; ok {
			p.Mapping = m
			p.Mapping.Signals = maps.Clone(m.Signals)
			out = append(out, p)
		}
	}
	return out
}

// Decode implements Decoder.
func (d *Discovery) Decode(topic string, payload []byte, _ time.Time) ([]device.Reading, error) {
	rest, ok := strings.CutPrefix(topic, d.prefix+"/")
	if !ok || !strings.HasSuffix(rest, "/config") {
		return nil, ErrNotMine
	}
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: homeassistant discovery: %v", ErrMalformed, err)
	}
	lv := strings.Split(strings.TrimSuffix(rest, "/config"), "/")
	var component, node, object string
	switch len(lv) {
	case 2:
		component, object = lv[0], lv[1]
	case 3:
		component, node, object = lv[0], lv[1], lv[2]
	default:
		return nil, fmt.Errorf("%w: homeassistant discovery topic %q: want %s/<component>/[<node_id>/]<object_id>/config", ErrMalformed, truncate(topic, 128), d.prefix)
	}
	for i, id := range []string{component, node, object} {
		if i == 1 && len(lv) == 2 {
			continue // no node_id
		}
		if !haID(id) {
			return nil, fmt.Errorf("%w: homeassistant discovery topic %q: id %q: want 1..128 letters, digits, _ and -", ErrMalformed, truncate(topic, 128), truncate(id, 64))
		}
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		d.store(topic, nil)
		return nil, nil
	}
	if err := checkPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: homeassistant discovery topic %q: %v", ErrMalformed, truncate(topic, 128), err)
	}
	p, err := parseDiscovery(topic, component, node, object, payload)
	if err != nil {
		return nil, fmt.Errorf("%w: homeassistant discovery topic %q: %v", ErrMalformed, truncate(topic, 128), err)
	}
	if err := d.store(topic, p); err != nil {
		return nil, fmt.Errorf("homeassistant discovery topic %q: %w", truncate(topic, 128), err)
	}
	return nil, nil
}

// store puts, replaces or (p == nil) removes the proposal of a config topic.
func (d *Discovery) store(topic string, p *Proposal) error {
	d.mu.Lock()
	old, had := d.proposals[topic]
	changed := false
	switch {
	case p == nil:
		if had {
			delete(d.proposals, topic)
			changed = true
		}
	case !had && len(d.proposals) >= d.max:
		d.mu.Unlock()
		return fmt.Errorf("%w: %d proposals held (max %d)", ErrLimit, d.max, d.max)
	default:
		if !had || !reflect.DeepEqual(old, *p) {
			d.proposals[topic] = *p
			changed = true
		}
	}
	d.mu.Unlock()
	if changed && d.onProposal != nil {
		d.onProposal(topic, p)
	}
	if changed && d.onChange != nil {
		d.onChange()
	}
	return nil
}

func haID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// haAbbrev expands the abbreviated discovery keys hearth reads.
var haAbbrev = map[string]string{
	"avty": "availability", "avty_t": "availability_topic", "avty_tpl": "availability_template",
	"cmd_t": "command_topic", "dev": "device", "dev_cla": "device_class", "json_attr_t": "json_attributes_topic",
	"obj_id": "object_id", "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
	"pl_off": "payload_off", "pl_on": "payload_on", "stat_cla": "state_class", "stat_off": "state_off",
	"stat_on": "state_on", "stat_t": "state_topic", "stat_val_tpl": "state_value_template",
	"uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template",
	"t": "topic", "ids": "identifiers", "mf": "manufacturer", "mdl": "model", "sw": "sw_version",
	"hw": "hw_version", "sa": "suggested_area", "cns": "connections",
}

// haObject decodes a JSON object and expands abbreviated keys; a full key wins over
// its abbreviation.
func haObject(raw []byte) (map[string]json.RawMessage, error) {
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		if full, ok := haAbbrev[k]; ok {
			if _, dup := obj[full]; dup {
				continue
			}
			k = full
		}
		out[k] = v
	}
	return out, nil
}

type haConfig struct {
	obj  map[string]json.RawMessage
	base string
}

func (c haConfig) str(key string) (string, error) {
	v, err := jsonScalar(c.obj[key])
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	switch v.typ {
	case 'z':
		return "", nil
	case 's':
		if len(v.s) > 1024 {
			return "", fmt.Errorf("%s: longer than 1024 bytes", key)
		}
		return v.s, nil
	}
	return "", fmt.Errorf("%s: %s, want a string", key, v)
}

// payloadStr reads payload_on/off and friends, which may be strings, booleans or
// numbers.
func (c haConfig) payloadStr(key, def string) (string, error) {
	raw, ok := c.obj[key]
	if !ok {
		return def, nil
	}
	v, err := jsonScalar(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	switch v.typ {
	case 'z':
		return def, nil
	case 'o':
		return "", fmt.Errorf("%s: %s, want a string, number or boolean", key, v)
	case 's':
		return clip(v.s, 256), nil
	case 'n':
		return strings.TrimSpace(string(raw)), nil
	}
	return v.String(), nil
}

func (c haConfig) topic(key string) (string, error) {
	s, err := c.str(key)
	if err != nil || s == "" {
		return s, err
	}
	s = expandBase(s, c.base)
	if err := checkTopic(s); err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	if strings.Contains(s, "//") || strings.HasPrefix(s, "/") && len(s) == 1 {
		return "", fmt.Errorf("%s: %q has an empty level", key, truncate(s, 128))
	}
	return s, nil
}

func expandBase(s, base string) string {
	if base == "" {
		return s
	}
	if strings.HasPrefix(s, "~") {
		return base + s[1:]
	}
	if strings.HasSuffix(s, "~") {
		return s[:len(s)-1] + base
	}
	return s
}

func parseDiscovery(topic, component, node, object string, payload []byte) (*Proposal, error) {
	obj, err := haObject(payload)
	if err != nil {
		return nil, err
	}
	c := haConfig{obj: obj}
	if c.base, err = c.str("~"); err != nil {
		return nil, err
	}
	p := Proposal{ConfigTopic: topic, Component: component, NodeID: node, ObjectID: object,
		PayloadAvailable: "online", PayloadNotAvailable: "offline"}
	for _, f := range []struct {
		key string
		dst *string
	}{{"unique_id", &p.UniqueID}, {"name", &p.EntityName}, {"device_class", &p.DeviceClass},
		{"unit_of_measurement", &p.Unit}, {"value_template", &p.ValueTemplate}} {
		if *f.dst, err = c.str(f.key); err != nil {
			return nil, err
		}
	}
	p.EntityName = clip(p.EntityName, 128)
	if p.StateTopic, err = c.topic("state_topic"); err != nil {
		return nil, err
	}
	if p.AvailabilityTopic, err = c.topic("availability_topic"); err != nil {
		return nil, err
	}
	if p.PayloadAvailable, err = c.payloadStr("payload_available", "online"); err != nil {
		return nil, err
	}
	if p.PayloadNotAvailable, err = c.payloadStr("payload_not_available", "offline"); err != nil {
		return nil, err
	}
	if raw, ok := obj["availability"]; ok && p.AvailabilityTopic == "" {
		if err := parseHAAvailability(&p, raw, c.base); err != nil {
			return nil, err
		}
	}
	if raw, ok := obj["device"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := parseHADevice(&p, raw); err != nil {
			return nil, err
		}
	}
	switch component {
	case "binary_sensor":
		if p.PayloadOn, err = c.payloadStr("payload_on", "ON"); err != nil {
			return nil, err
		}
		if p.PayloadOff, err = c.payloadStr("payload_off", "OFF"); err != nil {
			return nil, err
		}
	case "switch":
		on, err := c.payloadStr("payload_on", "ON")
		if err != nil {
			return nil, err
		}
		off, err := c.payloadStr("payload_off", "OFF")
		if err != nil {
			return nil, err
		}
		if p.PayloadOn, err = c.payloadStr("state_on", on); err != nil {
			return nil, err
		}
		if p.PayloadOff, err = c.payloadStr("state_off", off); err != nil {
			return nil, err
		}
	case "sensor":
	default:
		return nil, nil // lights, covers, buttons, ...: nothing hearth reads
	}
	if p.StateTopic == "" {
		return nil, nil // optimistic switch: no state to read
	}
	tpl, tplErr := parseTemplate(p.ValueTemplate)
	if tplErr != nil {
		p.Problem = "value_template: " + tplErr.Error()
	}
	switch {
	case len(tpl.path) > 0:
		p.Property = strings.ToLower(strings.Join(tpl.path, "."))
	case p.DeviceClass != "":
		p.Property = strings.ToLower(p.DeviceClass)
	default:
		p.Property = component
	}
	if len(p.Property) > MaxPropertyLen {
		p.Property = clip(p.Property, MaxPropertyLen)
	}
	sig, sigWhy := guessSignal(&p)
	if sig == "" {
		return nil, nil // link quality, firmware updates, ...: no hearth signal
	}
	p.Signal = sig
	kind, kindWhy := guessKind(&p, sig)
	name := p.UniqueID
	if name == "" {
		name = object
		if node != "" {
			name = node + "/" + object
		}
	}
	p.Mapping = Mapping{Source: SourceHomeAssistant, Name: name, Device: suggestID(p.DeviceName, p.EntityName, node, object),
		Kind: kind, Signals: map[string]device.Signal{p.Property: sig}}
	if err := p.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("unique_id %q cannot name a mapping: %v", truncate(name, 64), err)
	}
	p.Reason = kindWhy + "; " + sigWhy
	return &p, nil
}

func parseHAAvailability(p *Proposal, raw json.RawMessage, base string) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("availability: want a list of objects: %v", err)
	}
	if len(list) == 0 {
		return nil
	}
	obj, err := haObject(list[0])
	if err != nil {
		return fmt.Errorf("availability[0]: %v", err)
	}
	c := haConfig{obj: obj, base: base}
	if p.AvailabilityTopic, err = c.topic("topic"); err != nil {
		return fmt.Errorf("availability[0]: %v", err)
	}
	if p.PayloadAvailable, err = c.payloadStr("payload_available", "online"); err != nil {
		return fmt.Errorf("availability[0]: %v", err)
	}
	if p.PayloadNotAvailable, err = c.payloadStr("payload_not_available", "offline"); err != nil {
		return fmt.Errorf("availability[0]: %v", err)
	}
	return nil
}

func parseHADevice(p *Proposal, raw json.RawMessage) error {
	obj, err := haObject(raw)
	if err != nil {
		return fmt.Errorf("device: %v", err)
	}
	c := haConfig{obj: obj}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &p.DeviceName}, {"model", &p.Model}, {"manufacturer", &p.Manufacturer}} {
		s, err := c.str(f.key)
		if err != nil {
			return fmt.Errorf("device: %v", err)
		}
		*f.dst = clip(s, 128)
	}
	ids, ok := obj["identifiers"]
	if !ok {
		return nil
	}
	v, err := jsonScalar(ids)
	if err != nil {
		return fmt.Errorf("device: identifiers: %v", err)
	}
	switch v.typ {
	case 's':
		p.Identifiers = []string{clip(v.s, 128)}
	case 'o':
		var list []json.RawMessage
		if err := json.Unmarshal(ids, &list); err != nil {
			return fmt.Errorf("device: identifiers: want a string or a list of strings")
		}
		for _, e := range list {
			s, err := jsonScalar(e)
			if err != nil || s.typ != 's' {
				return fmt.Errorf("device: identifiers: want a string or a list of strings")
			}
			if len(p.Identifiers) < 4 {
				p.Identifiers = append(p.Identifiers, clip(s.s, 128))
			}
		}
	case 'z':
	default:
		return fmt.Errorf("device: identifiers: %s, want a string or a list of strings", v)
	}
	return nil
}

// guessSignal picks the hearth signal of an entity, or "" when it has none.
func guessSignal(p *Proposal) (device.Signal, string) {
	class := strings.ToLower(p.DeviceClass)
	names := strings.ToLower(p.EntityName + " " + p.ObjectID + " " + p.Property)
	switch p.Component {
	case "switch":
		return device.SignalActive, "switch state → active"
	case "binary_sensor":
		switch class {
		case "door", "opening", "window", "garage_door":
			return device.SignalDoor, "device_class " + class + " → door"
		case "motion", "occupancy", "presence", "moving":
			return device.SignalActive, "device_class " + class + " → active"
		case "power", "plug", "running":
			return device.SignalActive, "device_class " + class + " → active"
		case "":
			switch {
			case p.Property == "contact" || strings.Contains(names, "door"):
				return device.SignalDoor, "contact/door binary_sensor → door"
			}
			return device.SignalActive, "binary_sensor → active"
		}
		return "", ""
	case "sensor":
		switch class {
		case "temperature", "humidity", "power", "energy", "battery":
			return device.Signal(class), "device_class " + class + " → " + class
		case "":
		default:
			return "", ""
		}
		switch strings.TrimSpace(p.Unit) {
		case "W", "kW":
			return device.SignalPower, "unit " + p.Unit + " → power"
		case "kWh", "Wh":
			return device.SignalEnergy, "unit " + p.Unit + " → energy"
		case "°C", "°F", "ºC", "ºF":
			return device.SignalTemperature, "unit " + p.Unit + " → temperature"
		case "%":
			switch {
			case strings.Contains(names, "humid"):
				return device.SignalHumidity, "unit % and a humidity name → humidity"
			case strings.Contains(names, "batt"):
				return device.SignalBattery, "unit % and a battery name → battery"
			}
		}
	}
	return "", ""
}

// kindWords are matched, in order, at the start of a word of the entity, device and
// model names; the first match names the kind.
var kindWords = []struct {
	word string
	kind device.Kind
}{
	{"dishwasher", device.KindDishwasher}, {"dish washer", device.KindDishwasher}, {"洗碗机", device.KindDishwasher},
	{"fridge", device.KindFridge}, {"refrigerator", device.KindFridge}, {"kühlschrank", device.KindFridge}, {"冰箱", device.KindFridge},
	{"freezer", device.KindFreezer}, {"冷柜", device.KindFreezer},
	{"microwave", device.KindMicrowave}, {"微波炉", device.KindMicrowave},
	{"oven", device.KindOven}, {"烤箱", device.KindOven},
	{"stove", device.KindStove}, {"cooktop", device.KindStove}, {"hob", device.KindStove},
	{"toaster", device.KindToaster}, {"kettle", device.KindKettle},
	{"washing machine", device.KindWasher}, {"washer", device.KindWasher}, {"洗衣机", device.KindWasher},
	{"dryer", device.KindDryer}, {"tumble", device.KindDryer},
	{"cabinet", device.KindKitchenCabinet}, {"cupboard", device.KindKitchenCabinet}, {"pantry", device.KindKitchenCabinet}, {"drawer", device.KindKitchenCabinet},
	{"front door", device.KindEntryDoor}, {"entry", device.KindEntryDoor}, {"entrance", device.KindEntryDoor}, {"main door", device.KindEntryDoor}, {"back door", device.KindEntryDoor},
	{"motion", device.KindMotion}, {"pir", device.KindMotion}, {"occupancy", device.KindMotion},
	{"plug", device.KindPlug}, {"socket", device.KindPlug}, {"outlet", device.KindPlug},
}

func guessKind(p *Proposal, sig device.Signal) (device.Kind, string) {
	texts := []struct{ what, s string }{{"name", p.EntityName}, {"device name", p.DeviceName},
		{"object_id", p.ObjectID}, {"node_id", p.NodeID}, {"model", p.Model}}
	for _, w := range kindWords {
		for _, t := range texts {
			if hasWord(normalizeWords(t.s), w.word) {
				return w.kind, fmt.Sprintf("%s %q names %q → %s", t.what, truncate(t.s, 64), w.word, w.kind)
			}
		}
	}
	switch {
	case sig == device.SignalActive && (p.Component == "switch" || p.DeviceClass == "power" || p.DeviceClass == "plug"):
		return device.KindPlug, "no appliance named; a switch → plug"
	case sig == device.SignalActive && p.Component == "binary_sensor":
		return device.KindMotion, "no appliance named; an activity sensor → motion"
	case sig == device.SignalPower || sig == device.SignalEnergy:
		return device.KindPlug, "no appliance named; a power meter → plug"
	}
	return device.KindSensor, "no appliance named → sensor"
}

// normalizeWords lower-cases s and turns separators into single spaces.
func normalizeWords(s string) string {
	var b strings.Builder
	space := true
	for _, r := range strings.ToLower(s) {
		if r == '_' || r == '-' || r == '.' || r == '/' || r == ' ' || r == '(' || r == ')' || r == '&' || r == ',' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return b.String()
}

// hasWord reports whether w starts a word of s (or appears anywhere, for words
// outside ASCII, whose scripts do not separate words).
func hasWord(s, w string) bool {
	if w[0] >= utf8.RuneSelf {
		return strings.Contains(s, w)
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		if i+j == 0 || s[i+j-1] == ' ' {
			return true
		}
		i += j + 1
	}
}

// suggestID derives a device id from the first usable name.
func suggestID(names ...string) string {
	for _, n := range names {
		var b strings.Builder
		under := false
		for _, r := range strings.ToLower(n) {
			switch {
			case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
				under = false
			case !under && b.Len() > 0:
				b.WriteByte('_')
				under = true
			}
		}
		id := strings.TrimRight(b.String(), "_")
		if len(id) > device.MaxIDLen {
			id = strings.TrimRight(id[:device.MaxIDLen], "_")
		}
		if id != "" {
			return id
		}
	}
	return "ha_device"
}

// haTemplate is the small part of Home Assistant's Jinja hearth understands:
// {{ value }}, {{ value_json.a.b }}, {{ value_json['a'] }}, optionally followed by
// the filters float, int, round(n), lower, upper, trim, string, is_defined.
type haTemplate struct {
	path    []string // nil: the raw payload
	filters []haFilter
}

type haFilter struct {
	name string
	arg  int
}

const maxTemplatePath = 8

func parseTemplate(s string) (haTemplate, error) {
	var t haTemplate
	s = strings.TrimSpace(s)
	if s == "" {
		return t, nil
	}
	inner, ok := strings.CutPrefix(s, "{{")
	if ok {
		inner, ok = strings.CutSuffix(inner, "}}")
	}
	if !ok || strings.Contains(inner, "{{") || strings.Contains(inner, "}}") || strings.Contains(inner, "{%") {
		return t, fmt.Errorf("%q is not a single {{ expression }}", truncate(s, 64))
	}
	parts := strings.Split(inner, "|")
	expr := strings.TrimSpace(parts[0])
	switch {
	case expr == "value":
	case strings.HasPrefix(expr, "value_json"):
		rest := expr[len("value_json"):]
		for rest != "" {
			if len(t.path) == maxTemplatePath {
				return t, fmt.Errorf("%q: path deeper than %d", truncate(s, 64), maxTemplatePath)
			}
			switch rest[0] {
			case '.':
				n := 1
				for n < len(rest) && (rest[n] == '_' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= '0' && rest[n] <= '9') {
					n++
				}
				if n == 1 {
					return t, fmt.Errorf("%q: empty name after '.'", truncate(s, 64))
				}
				t.path = append(t.path, rest[1:n])
				rest = rest[n:]
			case '[':
				if len(rest) < 4 || (rest[1] != '\'' && rest[1] != '"') {
					return t, fmt.Errorf("%q: only value_json['key'] indexing is supported", truncate(s, 64))
				}
				end := strings.IndexByte(rest[2:], rest[1])
				if end < 0 || 2+end+1 >= len(rest) || rest[2+end+1] != ']' || end == 0 {
					return t, fmt.Errorf("%q: unterminated ['key']", truncate(s, 64))
				}
				t.path = append(t.path, rest[2:2+end])
				rest = rest[2+end+2:]
			default:
				return t, fmt.Errorf("%q: unsupported expression", truncate(s, 64))
			}
		}
		if len(t.path) == 0 {
			return t, fmt.Errorf("%q: value_json without a key", truncate(s, 64))
		}
	default:
		return t, fmt.Errorf("%q: only value and value_json.<key> are supported", truncate(s, 64))
	}
	if len(parts) > 5 {
		return t, fmt.Errorf("%q: too many filters", truncate(s, 64))
	}
	for _, f := range parts[1:] {
		f = strings.TrimSpace(f)
		name, arg, hasArg := strings.Cut(f, "(")
		name = strings.TrimSpace(name)
		if hasArg {
			a, ok := strings.CutSuffix(strings.TrimSpace(arg), ")")
			if !ok {
				return t, fmt.Errorf("filter %q: unbalanced (", truncate(f, 32))
			}
			arg = strings.TrimSpace(a)
		}
		hf := haFilter{name: name}
		switch name {
		case "float", "int": // a default argument is ignored: a bad value is malformed
		case "round":
			if arg != "" {
				n, err := strconv.Atoi(arg)
				if err != nil || n < 0 || n > 10 {
					return t, fmt.Errorf("filter %q: want round(0..10)", truncate(f, 32))
				}
				hf.arg = n
			}
		case "lower", "upper", "trim", "string", "is_defined":
			if hasArg {
				return t, fmt.Errorf("filter %q takes no argument", name)
			}
		default:
			return t, fmt.Errorf("filter %q is not supported", truncate(name, 32))
		}
		t.filters = append(t.filters, hf)
	}
	return t, nil
}

// extract applies the template to a payload. found is false when value_json has no
// such key. obj caches the payload's top-level object across entities.
func (t haTemplate) extract(payload []byte, obj *map[string]json.RawMessage) (v scalar, found bool, err error) {
	if t.path == nil {
		v = scalar{typ: 's', s: strings.TrimSpace(string(payload))}
	} else {
		if *obj == nil {
			o, err := decodeObject(payload)
			if err != nil {
				return v, false, fmt.Errorf("value_json: %v", err)
			}
			*obj = o
		}
		cur := *obj
		var raw json.RawMessage
		for i, k := range t.path {
			r, ok := cur[k]
			if !ok {
				return v, false, nil
			}
			raw = r
			if i < len(t.path)-1 {
				if s, _ := jsonScalar(raw); s.typ != 'o' {
					return v, false, nil
				}
				if cur, err = decodeObject(raw); err != nil {
					return v, false, nil // an array where an object was expected: undefined
				}
			}
		}
		if v, err = jsonScalar(raw); err != nil {
			return v, false, err
		}
	}
	for _, f := range t.filters {
		if v, err = f.apply(v); err != nil {
			return v, false, err
		}
	}
	return v, true, nil
}

func (f haFilter) apply(v scalar) (scalar, error) {
	switch f.name {
	case "float", "int", "round":
		var x float64
		switch v.typ {
		case 'n':
			x = v.num
		case 'b':
			if v.b {
				x = 1
			}
		case 's':
			n, err := strictFloat(strings.TrimSpace(v.s))
			if err != nil {
				if unknownState(v.s) {
					return scalar{typ: 'z'}, nil
				}
				return v, fmt.Errorf("%s: %v", f.name, err)
			}
			x = n
		case 'z':
			return v, nil
		default:
			return v, fmt.Errorf("%s of %s", f.name, v)
		}
		switch f.name {
		case "int":
			x = math.Trunc(x)
		case "round":
			p := math.Pow(10, float64(f.arg))
			x = math.Round(x*p) / p
		}
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return v, fmt.Errorf("%s: out of range", f.name)
		}
		return scalar{typ: 'n', num: x}, nil
	case "lower":
		if v.typ == 's' {
			v.s = strings.ToLower(v.s)
		}
	case "upper":
		if v.typ == 's' {
			v.s = strings.ToUpper(v.s)
		}
	case "trim":
		if v.typ == 's' {
			v.s = strings.TrimSpace(v.s)
		}
	}
	return v, nil
}

// unknownState reports the states Home Assistant uses for "no value".
func unknownState(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "unknown", "unavailable", "none", "null":
		return true
	}
	return false
}

// sameState compares a state with payload_on/off the way Home Assistant's rendered
// strings compare: case-insensitively, and numerically for numbers.
func sameState(v scalar, want string) bool {
	var got string
	switch v.typ {
	case 's':
		got = strings.TrimSpace(v.s)
	case 'b':
		got = strconv.FormatBool(v.b)
	case 'n':
		if w, err := strictFloat(strings.TrimSpace(want)); err == nil {
			return w == v.num
		}
		got = strconv.FormatFloat(v.num, 'g', -1, 64)
	default:
		return false
	}
	return strings.EqualFold(got, strings.TrimSpace(want))
}

// HAStateOptions configures an HAState.
type HAStateOptions struct {
	// OnAvailability, when set, is called from Decode for a message on an accepted
	// entity's availability topic, once per hearth device. It must not block.
	OnAvailability func(Availability)
}

// HAState turns the state topics of accepted Home Assistant entities into readings.
// Each accepted Proposal (see Discovery.Accepted) says where the state is published
// and how to read it: the value_template picks the value from the payload (an
// entity whose key is missing from a JSON payload yields nothing), a binary_sensor or
// switch compares it with PayloadOn/PayloadOff (1/0), a sensor reads a number and
// converts its unit (°F → °C, kW → W, Wh → kWh). States "unknown", "unavailable" and
// "None" yield nothing. An entity whose state cannot be read is reported in a
// *FieldErrors (its Property as the field) with the readings of the other entities
// on the same topic. The signal is the accepted Mapping's Signals[Property],
// else the proposal's guessed Signal, else DefaultSignals of its kind.
//
// A topic that no accepted entity reads is ErrNotMine. When an entity reads a topic
// that a configured mapping reads too (a Zigbee2MQTT device's), put HAState and the
// adapters in a Layered decoder: both are read. Messages on an entity's availability
// topic are reported through OnAvailability.
//
// HAState is safe for concurrent use; Replace swaps the accepted entities atomically.
type HAState struct {
	onAvail func(Availability)
	tab     atomic.Pointer[haTable]
}

type haTable struct {
	byState map[string][]*haEntity
	byAvail map[string][]*haEntity
}

type haEntity struct {
	p   Proposal
	b   *binding
	sig device.Signal
	tpl haTemplate
}

// NewHAState returns an HAState reading the accepted proposals. nil opts means
// defaults.
func NewHAState(accepted []Proposal, opts *HAStateOptions) (*HAState, error) {
	s := &HAState{}
	if opts != nil {
		s.onAvail = opts.OnAvailability
	}
	if err := s.Replace(accepted); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace makes HAState read exactly the accepted proposals from now on. On error
// the previous set stays in force.
func (s *HAState) Replace(accepted []Proposal) error {
	t := &haTable{byState: make(map[string][]*haEntity), byAvail: make(map[string][]*haEntity)}
	for i, p := range accepted {
		e, err := newHAEntity(p.clone())
		if err != nil {
			return fmt.Errorf("mqtt homeassistant: accepted[%d] (%q): %v", i, truncate(p.Mapping.Name, 64), err)
		}
		t.byState[p.StateTopic] = append(t.byState[p.StateTopic], e)
		if p.AvailabilityTopic != "" {
			t.byAvail[p.AvailabilityTopic] = append(t.byAvail[p.AvailabilityTopic], e)
		}
	}
	s.tab.Store(t)
	return nil
}

func newHAEntity(p Proposal) (*haEntity, error) {
	if p.Mapping.Source != SourceHomeAssistant {
		return nil, fmt.Errorf("mapping source %q, want %q", p.Mapping.Source, SourceHomeAssistant)
	}
	if err := p.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("mapping: %v", err)
	}
	if p.Problem != "" {
		return nil, errors.New(p.Problem)
	}
	if p.StateTopic == "" {
		return nil, errors.New("no state topic")
	}
	if err := checkTopic(p.StateTopic); err != nil {
		return nil, fmt.Errorf("state topic: %v", err)
	}
	if p.AvailabilityTopic != "" {
		if err := checkTopic(p.AvailabilityTopic); err != nil {
			return nil, fmt.Errorf("availability topic: %v", err)
		}
	}
	switch p.Component {
	case "binary_sensor", "switch", "sensor":
	default:
		return nil, fmt.Errorf("component %q cannot be read", p.Component)
	}
	tpl, err := parseTemplate(p.ValueTemplate)
	if err != nil {
		return nil, fmt.Errorf("value_template: %v", err)
	}
	b := newBinding(p.Mapping)
	prop := strings.ToLower(p.Property)
	var sig device.Signal
	switch {
	case len(p.Mapping.Signals) > 0:
		sig, _ = b.signal(prop)
	case p.Signal.Valid():
		sig = p.Signal
	default:
		sig = DefaultSignals(p.Mapping.Kind)[prop]
	}
	if sig == "" {
		return nil, fmt.Errorf("no signal for property %q (add it to the mapping's signals)", prop)
	}
	return &haEntity{p: p, b: b, sig: sig, tpl: tpl}, nil
}

// Decode implements Decoder.
func (s *HAState) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	t := s.tab.Load()
	ents := t.byState[topic]
	if len(ents) == 0 {
		if av := t.byAvail[topic]; len(av) > 0 {
			return nil, s.availability(topic, av, payload, now)
		}
		return nil, ErrNotMine
	}
	if err := checkPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: homeassistant state topic %q: %v", ErrMalformed, truncate(topic, 128), err)
	}
	var (
		obj map[string]json.RawMessage
		out []device.Reading
		bad = FieldErrors{Topic: topic}
	)
	for _, e := range ents {
		r, ok, err := e.read(payload, &obj)
		if err != nil {
			// The other entities on this topic are still read.
			bad.add(e.p.Property, fmt.Errorf("entity %q: %v", truncate(e.p.Mapping.Name, 64), err))
			continue
		}
		if ok {
			out = append(out, r)
		}
	}
	return bad.result(out)
}

func (e *haEntity) read(payload []byte, obj *map[string]json.RawMessage) (device.Reading, bool, error) {
	v, found, err := e.tpl.extract(payload, obj)
	if err != nil || !found || v.typ == 'z' || v.typ == 's' && unknownState(v.s) {
		return device.Reading{}, false, err
	}
	if e.p.Component != "sensor" {
		switch {
		case sameState(v, e.p.PayloadOn):
			v = scalar{typ: 'n', num: 1}
		case sameState(v, e.p.PayloadOff):
			v = scalar{typ: 'n', num: 0}
		default:
			return device.Reading{}, false, fmt.Errorf("state %s is neither payload_on %q nor payload_off %q", v, truncate(e.p.PayloadOn, 32), truncate(e.p.PayloadOff, 32))
		}
	}
	r, err := e.b.reading(e.sig, v, e.p.Unit, true)
	if err != nil {
		return device.Reading{}, false, err
	}
	return r, true, nil
}

func (s *HAState) availability(topic string, ents []*haEntity, payload []byte, now time.Time) error {
	state := string(bytes.TrimSpace(payload))
	if strings.HasPrefix(state, "{") {
		var v struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(state), &v); err == nil && v.State != "" {
			state = v.State
		}
	}
	seen := make(map[string]bool)
	for _, e := range ents {
		var online bool
		switch {
		case state == e.p.PayloadAvailable:
			online = true
		case state == e.p.PayloadNotAvailable:
		default:
			return fmt.Errorf("%w: homeassistant availability topic %q: %q is neither %q nor %q", ErrMalformed, truncate(topic, 128),
				truncate(state, 32), truncate(e.p.PayloadAvailable, 32), truncate(e.p.PayloadNotAvailable, 32))
		}
		if seen[e.p.Mapping.Device] {
			continue
		}
		seen[e.p.Mapping.Device] = true
		callAvailability(s.onAvail, Availability{Source: SourceHomeAssistant, Name: e.p.Mapping.Name, Device: e.p.Mapping.Device, Online: online, State: state, At: now})
	}
	return nil
}
