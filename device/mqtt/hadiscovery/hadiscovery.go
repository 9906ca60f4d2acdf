package hadiscovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/device/mqtt/internal/hatemplate"
)

// Proposal is what hearth learned from one Home Assistant MQTT discovery config: a
// suggested mqtt.Mapping for the entity and how to read its state topic. A household (or
// an installer) accepts it by adding the mqtt.Mapping, possibly corrected, to the
// configuration under the same Name; State then turns the entity's states into
// readings.
type Proposal struct {
	// Mapping is the suggestion: Source "homeassistant", Name the entity's unique_id
	// (else "<node_id>/<object_id>" or "<object_id>"), Device an id derived from the
	// device or entity name, Kind and Signals guessed (see Reason).
	Mapping mqtt.Mapping
	// Property is the Signals key of the entity: the value_json path the template
	// reads ("contact", "update.state"), else the device_class, else the component.
	Property string
	// Signal is the signal guessed for the entity from its component, device_class,
	// unit and names. State uses it when an accepted Mapping has no Signals.
	Signal device.Signal
	// Reason says in words why Kind and Signal were guessed.
	Reason string
	// Problem, when not empty, says why State cannot read this entity (an
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

// LearnerOptions configures a Learner. Zero fields take the defaults shown.
type LearnerOptions struct {
	// Prefix is Home Assistant's discovery_prefix. Default "homeassistant".
	Prefix string
	// MaxProposals caps the proposals held. Default 256.
	MaxProposals int
	// OnChange, when set, is called from Learn after a proposal was added, changed or
	// removed, e.g. to rebuild a State from Accepted. It must not block.
	OnChange func()
	// Known are proposals learned before (persisted by OnProposal), held from the
	// start: a firmware that does not retain its discovery config announces it only
	// when it starts or Home Assistant does, which may be long after hearth restarts.
	// Those beyond MaxProposals (by config topic) are dropped.
	Known []Proposal
	// OnProposal, when set, is called from Learn with the config topic of each
	// proposal added or changed, and with nil when one was removed (an empty config),
	// so that it can be persisted. A config received again unchanged (a retained
	// one, on every reconnect) calls nothing. It should be quick.
	OnProposal func(configTopic string, p *Proposal)
}

// Learner learns devices from Home Assistant MQTT discovery configs
// (<prefix>/<component>/[<node_id>/]<object_id>/config), which Zigbee2MQTT, Tasmota,
// ESPHome and many other firmwares publish, retained. It yields no readings: it keeps
// a Proposal for every binary_sensor, sensor and switch whose state can become a
// hearth signal (door, motion, power, energy, temperature, humidity, battery, on/off);
// other components and entities with no hearth signal (link quality, firmware update,
// ...) are ignored. An empty payload removes the entity's proposal, as it removes the
// entity in Home Assistant. What a household accepts of it reaches a State through
// Accepted and State.Replace: a new value, never a change inside State.Decode.
//
// Config keys may be abbreviated (stat_t, dev_cla, val_tpl, uniq_id, dev, ids, mdl,
// mf, ...), and topics may use the "~" base. Kind is guessed from the entity, device
// and model names (fridge, freezer, washer, dishwasher, oven, ... also front door,
// cabinet, motion, plug), then from the device_class; Reason explains the guess.
//
// Topics under the prefix that are not config topics are mqtt.ErrNotMine (state topics
// there belong to State). A config whose JSON is broken or whose keys have the wrong
// types is mqtt.ErrMalformed; a new proposal beyond MaxProposals is mqtt.ErrLimit.
// Learner is safe for concurrent use.
type Learner struct {
	prefix     string
	max        int
	onChange   func()
	onProposal func(string, *Proposal)

	mu  sync.Mutex                  // one Learn at a time builds the next set
	set atomic.Pointer[proposalSet] // published; never changed
}

// proposalSet is the proposals held, by config topic. A published set is never
// changed: Learn builds the next one (copy-on-write).
type proposalSet map[string]Proposal

// DefaultLearnerOptions are the documented defaults: the one place they are written.
func DefaultLearnerOptions() LearnerOptions {
	return LearnerOptions{Prefix: mqtt.DefaultDiscoveryPrefix, MaxProposals: mqtt.DefaultDiscoveryMaxProposals}
}

// NewLearner returns a Learner holding opts.Known. nil opts means defaults.
func NewLearner(opts *LearnerOptions) (*Learner, error) {
	var o LearnerOptions
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultLearnerOptions().Prefix
	}
	if o.MaxProposals <= 0 {
		o.MaxProposals = DefaultLearnerOptions().MaxProposals
	}
	if err := conv.CheckBase(o.Prefix); err != nil {
		return nil, fmt.Errorf("mqtt homeassistant: discovery prefix: %v", err)
	}
	l := &Learner{prefix: o.Prefix, max: o.MaxProposals, onChange: o.OnChange, onProposal: o.OnProposal}
	set := make(proposalSet)
	known := slices.Clone(o.Known)
	slices.SortFunc(known, func(a, b Proposal) int { return strings.Compare(a.ConfigTopic, b.ConfigTopic) })
	for _, p := range known {
		if len(set) >= l.max {
			break
		}
		if p.ConfigTopic != "" {
			set[p.ConfigTopic] = p.clone()
		}
	}
	l.set.Store(&set)
	return l, nil
}

// Proposals returns a copy of the proposals held, sorted by config topic.
func (l *Learner) Proposals() []Proposal {
	set := *l.set.Load()
	out := make([]Proposal, 0, len(set))
	for _, k := range conv.SortedKeys(set) {
		out = append(out, set[k].clone())
	}
	return out
}

// Accepted returns the proposals whose Name is mapped in ms (source
// "homeassistant"), each with its Mapping replaced by the configured one: the input
// of NewState and State.Replace.
func (l *Learner) Accepted(ms mqtt.Mappings) []Proposal {
	byName := make(map[string]mqtt.Mapping)
	for _, m := range ms {
		if m.Source == mqtt.SourceHomeAssistant {
			byName[m.Name] = m
		}
	}
	var out []Proposal
	for _, p := range l.Proposals() {
		if m, ok := byName[p.Mapping.Name]; ok {
			p.Mapping = m
			p.Mapping.Signals = maps.Clone(m.Signals)
			out = append(out, p)
		}
	}
	return out
}

// Learn implements mqtt.Learner.
func (l *Learner) Learn(topic string, payload []byte, _ time.Time) error {
	rest, ok := strings.CutPrefix(topic, l.prefix+"/")
	if !ok || !strings.HasSuffix(rest, "/config") {
		return mqtt.ErrNotMine
	}
	if err := conv.CheckTopic(topic); err != nil {
		return fmt.Errorf("%w: homeassistant discovery: %v", mqtt.ErrMalformed, err)
	}
	lv := strings.Split(strings.TrimSuffix(rest, "/config"), "/")
	var component, node, object string
	switch len(lv) {
	case 2:
		component, object = lv[0], lv[1]
	case 3:
		component, node, object = lv[0], lv[1], lv[2]
	default:
		return fmt.Errorf("%w: homeassistant discovery topic %q: want %s/<component>/[<node_id>/]<object_id>/config", mqtt.ErrMalformed, conv.Truncate(topic, 128), l.prefix)
	}
	for i, id := range []string{component, node, object} {
		if i == 1 && len(lv) == 2 {
			continue // no node_id
		}
		if !haID(id) {
			return fmt.Errorf("%w: homeassistant discovery topic %q: id %q: want 1..128 letters, digits, _ and -", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Truncate(id, 64))
		}
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		return l.store(topic, nil)
	}
	if err := conv.CheckPayload(payload); err != nil {
		return fmt.Errorf("%w: homeassistant discovery topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	p, err := parseDiscovery(topic, component, node, object, payload)
	if err != nil {
		return fmt.Errorf("%w: homeassistant discovery topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	if err := l.store(topic, p); err != nil {
		return fmt.Errorf("homeassistant discovery topic %q: %w", conv.Truncate(topic, 128), err)
	}
	return nil
}

// store puts, replaces or (p == nil) removes the proposal of a config topic, in a new
// set; an unchanged proposal publishes nothing.
func (l *Learner) store(topic string, p *Proposal) error {
	l.mu.Lock()
	cur := *l.set.Load()
	old, had := cur[topic]
	switch {
	case p == nil && !had, p != nil && had && reflect.DeepEqual(old, *p):
		l.mu.Unlock()
		return nil // a retained config again, on every reconnect
	case p != nil && !had && len(cur) >= l.max:
		l.mu.Unlock()
		return fmt.Errorf("%w: %d proposals held (max %d)", mqtt.ErrLimit, l.max, l.max)
	}
	next := maps.Clone(cur)
	if p == nil {
		delete(next, topic)
	} else {
		next[topic] = *p
	}
	l.set.Store(&next)
	l.mu.Unlock()
	if l.onProposal != nil {
		l.onProposal(topic, p)
	}
	if l.onChange != nil {
		l.onChange()
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
	obj, err := conv.DecodeObject(raw)
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
	v, err := conv.JSONScalar(c.obj[key])
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	switch v.Type {
	case 'z':
		return "", nil
	case 's':
		if len(v.Str) > 1024 {
			return "", fmt.Errorf("%s: longer than 1024 bytes", key)
		}
		return v.Str, nil
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
	v, err := conv.JSONScalar(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	switch v.Type {
	case 'z':
		return def, nil
	case 'o':
		return "", fmt.Errorf("%s: %s, want a string, number or boolean", key, v)
	case 's':
		return conv.Clip(v.Str, 256), nil
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
	if err := conv.CheckTopic(s); err != nil {
		return "", fmt.Errorf("%s: %v", key, err)
	}
	if strings.Contains(s, "//") || strings.HasPrefix(s, "/") && len(s) == 1 {
		return "", fmt.Errorf("%s: %q has an empty level", key, conv.Truncate(s, 128))
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
	p.EntityName = conv.Clip(p.EntityName, 128)
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
	tpl, tplErr := hatemplate.Parse(p.ValueTemplate)
	if tplErr != nil {
		p.Problem = "value_template: " + tplErr.Error()
	}
	switch {
	case len(tpl.Path) > 0:
		p.Property = strings.ToLower(strings.Join(tpl.Path, "."))
	case p.DeviceClass != "":
		p.Property = strings.ToLower(p.DeviceClass)
	default:
		p.Property = component
	}
	if len(p.Property) > mqtt.MaxPropertyLen {
		p.Property = conv.Clip(p.Property, mqtt.MaxPropertyLen)
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
	p.Mapping = mqtt.Mapping{Source: mqtt.SourceHomeAssistant, Name: name, Device: suggestID(p.DeviceName, p.EntityName, node, object),
		Kind: kind, Signals: map[string]device.Signal{p.Property: sig}}
	if err := p.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("unique_id %q cannot name a mapping: %v", conv.Truncate(name, 64), err)
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
		*f.dst = conv.Clip(s, 128)
	}
	ids, ok := obj["identifiers"]
	if !ok {
		return nil
	}
	v, err := conv.JSONScalar(ids)
	if err != nil {
		return fmt.Errorf("device: identifiers: %v", err)
	}
	switch v.Type {
	case 's':
		p.Identifiers = []string{conv.Clip(v.Str, 128)}
	case 'o':
		var list []json.RawMessage
		if err := json.Unmarshal(ids, &list); err != nil {
			return fmt.Errorf("device: identifiers: want a string or a list of strings")
		}
		for _, e := range list {
			s, err := conv.JSONScalar(e)
			if err != nil || s.Type != 's' {
				return fmt.Errorf("device: identifiers: want a string or a list of strings")
			}
			if len(p.Identifiers) < 4 {
				p.Identifiers = append(p.Identifiers, conv.Clip(s.Str, 128))
			}
		}
	case 'z':
	default:
		return fmt.Errorf("device: identifiers: %s, want a string or a list of strings", v)
	}
	return nil
}
