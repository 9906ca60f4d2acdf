package mqtt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
)

// HomieOptions configures a Homie decoder. Zero fields take the defaults shown.
type HomieOptions struct {
	// BaseTopic is the Homie root. Default "homie".
	BaseTopic string
	// MaxDevices caps the devices whose attributes are kept. Default 256.
	MaxDevices int
	// MaxNodes caps the nodes kept per device. Default 32.
	MaxNodes int
	// MaxProperties caps the properties kept per device. Default 256.
	MaxProperties int
	// OnAvailability, when set, is called from Decode (outside the decoder's lock)
	// for every $state message of a mapped device. It must not block.
	OnAvailability func(Availability)
}

// HomieDevice is what a Homie device said about itself in its $-attributes.
type HomieDevice struct {
	ID         string // Homie device id (the mapping's Name)
	Name       string // $name
	Version    string // $homie
	State      string // $state: init, ready, disconnected, sleeping, lost, alert
	Nodes      []HomieNode
	Properties []HomieProperty // sorted by node, then id
}

// HomieNode is one node of a Homie device.
type HomieNode struct {
	ID         string
	Name       string   // $name
	Type       string   // $type
	Properties []string // $properties
}

// HomieProperty is one property of a Homie node.
type HomieProperty struct {
	Node, ID string
	Name     string // $name
	Datatype string // $datatype: integer, float, boolean, string, enum, color
	Unit     string // $unit
	Format   string // $format
}

// Homie decodes Homie v4 devices mapped with source "homie", whose Name is the Homie
// device id.
//
// Topics under the base topic:
//
//   - <base>/<device>/<node>/<property>: a value. The property is matched as
//     "<node>.<property>" and then as "<property>" against the mapping's Signals or
//     DefaultSignals of its kind. The value is read by its $datatype: boolean "true" /
//     "false" → 1/0, integer, float (NaN, Inf and out-of-range values are malformed),
//     enum (on/off words such as on/off, open/closed, true/false → 1/0, else the
//     index of the value in $format; Label is the value); string and color values
//     cannot become readings. Before $datatype is known the type is inferred. A
//     property named "contact" follows the Zigbee convention: true means closed (door
//     0). $unit converts to hearth's units (°F → °C, kW → W, Wh → kWh).
//   - <base>/<device>/$state: kept, and reported through OnAvailability: ready, init
//     and alert are online; disconnected, sleeping and lost are offline.
//   - <base>/<device>/$name, $homie, $nodes; <base>/<device>/<node>/$name, $type,
//     $properties; <base>/<device>/<node>/<property>/$name, $datatype, $unit, $format:
//     kept (see Device); no reading. Other attributes are ignored.
//   - <base>/$broadcast/..., .../<property>/set: nil, nil.
//
// Attributes are kept only for mapped devices, within MaxDevices, MaxNodes and
// MaxProperties; a message that would exceed a cap is refused with ErrLimit. A
// device without a mapping is ErrUnknownDevice. Homie is safe for concurrent use.
type Homie struct {
	base    string
	opts    HomieOptions
	idx     map[string]*binding
	onAvail func(Availability)

	mu      sync.Mutex
	devices map[string]*homieDevice
}

type homieDevice struct {
	name, version, state string
	nodes                map[string]*HomieNode
	nodeOrder            []string // from $nodes
	props                map[string]*HomieProperty
}

// maxHomieAttr bounds an attribute payload.
const maxHomieAttr = 1024

// NewHomie returns a decoder for the mappings of source "homie" in ms (others are
// ignored). nil opts means defaults.
func NewHomie(ms Mappings, opts *HomieOptions) (*Homie, error) {
	var o HomieOptions
	if opts != nil {
		o = *opts
	}
	if o.BaseTopic == "" {
		o.BaseTopic = "homie"
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = 256
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = 32
	}
	if o.MaxProperties <= 0 {
		o.MaxProperties = 256
	}
	if err := checkBase(o.BaseTopic); err != nil {
		return nil, fmt.Errorf("mqtt homie: base topic: %v", err)
	}
	idx, err := indexMappings(ms, SourceHomie)
	if err != nil {
		return nil, err
	}
	return &Homie{base: o.BaseTopic, opts: o, idx: idx, onAvail: o.OnAvailability, devices: make(map[string]*homieDevice)}, nil
}

// Device returns a copy of what device id said about itself so far.
func (h *Homie) Device(id string) (HomieDevice, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[id]
	if d == nil {
		return HomieDevice{}, false
	}
	out := HomieDevice{ID: id, Name: d.name, Version: d.version, State: d.state}
	seen := map[string]bool{}
	for _, n := range d.nodeOrder { // $nodes order first, then nodes it did not list
		if seen[n] {
			continue
		}
		seen[n] = true
		c := HomieNode{ID: n}
		if nd := d.nodes[n]; nd != nil {
			c = *nd
			c.Properties = append([]string(nil), nd.Properties...)
		}
		out.Nodes = append(out.Nodes, c)
	}
	for _, n := range sortedKeys(d.nodes) {
		if !seen[n] {
			c := *d.nodes[n]
			c.Properties = append([]string(nil), c.Properties...)
			out.Nodes = append(out.Nodes, c)
		}
	}
	for _, k := range sortedKeys(d.props) {
		out.Properties = append(out.Properties, *d.props[k])
	}
	return out, true
}

// Decode implements Decoder.
func (h *Homie) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	rest, ok := strings.CutPrefix(topic, h.base+"/")
	if !ok {
		return nil, ErrNotMine
	}
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: homie: %v", ErrMalformed, err)
	}
	lv := strings.Split(rest, "/")
	if lv[0] == "$broadcast" {
		return nil, nil
	}
	for i, l := range lv {
		if l == "" {
			return nil, fmt.Errorf("%w: homie topic %q: empty level %d", ErrMalformed, truncate(topic, 128), i+2)
		}
	}
	if len(lv) < 2 {
		return nil, fmt.Errorf("%w: homie topic %q: want <device>/<node>/<property> or a $attribute", ErrMalformed, truncate(topic, 128))
	}
	if len(lv) > 4 {
		return nil, fmt.Errorf("%w: homie topic %q: %d levels below the base (max 4)", ErrMalformed, truncate(topic, 128), len(lv))
	}
	id := lv[0]
	b := h.idx[id]
	if b == nil {
		return nil, fmt.Errorf("%w: homie device %q (topic %q)", ErrUnknownDevice, truncate(id, 128), truncate(topic, 128))
	}
	if len(lv) == 4 && lv[3] == "set" {
		return nil, nil
	}
	if !utf8.Valid(payload) {
		// Homie payloads are UTF-8 strings; anything else would end up in labels and
		// upstream category keys garbled.
		return nil, fmt.Errorf("%w: homie topic %q: payload is not UTF-8", ErrMalformed, truncate(topic, 128))
	}
	if len(lv) == 2 && !strings.HasPrefix(lv[1], "$") {
		return nil, fmt.Errorf("%w: homie topic %q: a node needs a property or $attribute", ErrMalformed, truncate(topic, 128))
	}
	if err := checkPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: homie topic %q: %v", ErrMalformed, truncate(topic, 128), err)
	}
	last := lv[len(lv)-1]
	if strings.HasPrefix(last, "$") || (len(lv) >= 3 && strings.HasPrefix(lv[1], "$")) || (len(lv) == 4 && strings.HasPrefix(lv[2], "$")) {
		return nil, h.attribute(topic, b, lv, payload, now)
	}
	if len(lv) != 3 {
		return nil, fmt.Errorf("%w: homie topic %q: want <device>/<node>/<property>", ErrMalformed, truncate(topic, 128))
	}
	return h.value(topic, b, lv[1], lv[2], payload)
}

func (h *Homie) attribute(topic string, b *binding, lv []string, payload []byte, now time.Time) error {
	if len(payload) > maxHomieAttr {
		return fmt.Errorf("%w: homie topic %q: attribute of %d bytes (max %d)", ErrMalformed, truncate(topic, 128), len(payload), maxHomieAttr)
	}
	val := strings.TrimSpace(string(payload))
	id := lv[0]
	// Only the attributes hearth uses are kept; $fw/..., $stats/... and others are ignored.
	var set func(d *homieDevice) error
	switch {
	case len(lv) == 2 && lv[1] == "$state":
		var online bool
		switch val {
		case "ready", "init", "alert":
			online = true
		case "disconnected", "sleeping", "lost":
		default:
			return fmt.Errorf("%w: homie topic %q: $state %q is not one of init, ready, disconnected, sleeping, lost, alert", ErrMalformed, truncate(topic, 128), clip(val, 32))
		}
		if err := h.with(id, func(d *homieDevice) error { d.state = val; return nil }); err != nil {
			return fmt.Errorf("homie topic %q: %w", truncate(topic, 128), err)
		}
		callAvailability(h.onAvail, Availability{Source: SourceHomie, Name: id, Device: b.Device, Online: online, State: val, At: now})
		return nil
	case len(lv) == 2 && lv[1] == "$name":
		set = func(d *homieDevice) error { d.name = clip(val, 128); return nil }
	case len(lv) == 2 && lv[1] == "$homie":
		set = func(d *homieDevice) error { d.version = clip(val, 32); return nil }
	case len(lv) == 2 && lv[1] == "$nodes":
		ids := splitList(val)
		if len(ids) > h.opts.MaxNodes {
			return fmt.Errorf("%w: homie topic %q: %d nodes (max %d)", ErrLimit, truncate(topic, 128), len(ids), h.opts.MaxNodes)
		}
		set = func(d *homieDevice) error { d.nodeOrder = ids; return nil }
	case len(lv) == 3 && !strings.HasPrefix(lv[1], "$"):
		node := lv[1]
		var f func(n *HomieNode)
		switch lv[2] {
		case "$name":
			f = func(n *HomieNode) { n.Name = clip(val, 128) }
		case "$type":
			f = func(n *HomieNode) { n.Type = clip(val, 128) }
		case "$properties":
			ps := splitList(val)
			if len(ps) > h.opts.MaxProperties {
				return fmt.Errorf("%w: homie topic %q: %d properties (max %d)", ErrLimit, truncate(topic, 128), len(ps), h.opts.MaxProperties)
			}
			f = func(n *HomieNode) { n.Properties = ps }
		default:
			return nil
		}
		set = func(d *homieDevice) error {
			n := d.nodes[node]
			if n == nil {
				if len(d.nodes) >= h.opts.MaxNodes {
					return fmt.Errorf("%w: node %q would be node %d (max %d)", ErrLimit, truncate(node, 64), len(d.nodes)+1, h.opts.MaxNodes)
				}
				n = &HomieNode{ID: node}
				d.nodes[node] = n
			}
			f(n)
			return nil
		}
	case len(lv) == 4 && !strings.HasPrefix(lv[1], "$") && !strings.HasPrefix(lv[2], "$"):
		node, prop := lv[1], lv[2]
		var f func(p *HomieProperty)
		switch lv[3] {
		case "$name":
			f = func(p *HomieProperty) { p.Name = clip(val, 128) }
		case "$datatype":
			switch val {
			case "integer", "float", "boolean", "string", "enum", "color":
			default:
				return fmt.Errorf("%w: homie topic %q: $datatype %q is not one of integer, float, boolean, string, enum, color", ErrMalformed, truncate(topic, 128), clip(val, 32))
			}
			f = func(p *HomieProperty) { p.Datatype = val }
		case "$unit":
			f = func(p *HomieProperty) { p.Unit = clip(val, device.MaxUnitLen) }
		case "$format":
			f = func(p *HomieProperty) { p.Format = val }
		default:
			return nil
		}
		set = func(d *homieDevice) error {
			p, err := h.property(d, node, prop)
			if err != nil {
				return err
			}
			f(p)
			return nil
		}
	default:
		return nil
	}
	if err := h.with(id, set); err != nil {
		return fmt.Errorf("homie topic %q: %w", truncate(topic, 128), err)
	}
	return nil
}

// with runs f on the kept attributes of device id, creating them within MaxDevices.
func (h *Homie) with(id string, f func(*homieDevice) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[id]
	if d == nil {
		if len(h.devices) >= h.opts.MaxDevices {
			return fmt.Errorf("%w: device %q would be device %d (max %d)", ErrLimit, truncate(id, 64), len(h.devices)+1, h.opts.MaxDevices)
		}
		d = &homieDevice{nodes: make(map[string]*HomieNode), props: make(map[string]*HomieProperty)}
		h.devices[id] = d
	}
	return f(d)
}

func (h *Homie) property(d *homieDevice, node, prop string) (*HomieProperty, error) {
	k := node + "/" + prop
	p := d.props[k]
	if p == nil {
		if len(d.props) >= h.opts.MaxProperties {
			return nil, fmt.Errorf("%w: property %q would be property %d (max %d)", ErrLimit, truncate(k, 64), len(d.props)+1, h.opts.MaxProperties)
		}
		p = &HomieProperty{Node: node, ID: prop}
		d.props[k] = p
	}
	return p, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, clip(p, 64))
		}
	}
	return out
}

func (h *Homie) value(topic string, b *binding, node, prop string, payload []byte) ([]device.Reading, error) {
	key := strings.ToLower(node + "." + prop)
	sig, ok := b.signal(key)
	if !ok {
		return nil, nil
	}
	if len(payload) == 0 {
		return nil, nil // a retained value being cleared
	}
	var meta HomieProperty
	h.mu.Lock()
	if d := h.devices[b.Name]; d != nil {
		if p := d.props[node+"/"+prop]; p != nil {
			meta = *p
		}
	}
	h.mu.Unlock()
	r, err := homieReading(b, sig, strings.ToLower(prop), meta, string(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: homie topic %q: %v", ErrMalformed, truncate(topic, 128), err)
	}
	return []device.Reading{r}, nil
}

func homieReading(b *binding, sig device.Signal, prop string, meta HomieProperty, s string) (device.Reading, error) {
	var v scalar
	label := ""
	switch meta.Datatype {
	case "boolean":
		switch s {
		case "true":
			v = scalar{typ: 'b', b: true}
		case "false":
			v = scalar{typ: 'b', b: false}
		default:
			return device.Reading{}, fmt.Errorf("boolean %q: want true or false", truncate(s, 32))
		}
	case "integer":
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return device.Reading{}, fmt.Errorf("integer %q: %v", truncate(s, 32), errors.Unwrap(err))
		}
		v = scalar{typ: 'n', num: float64(i)}
	case "float":
		f, err := strictFloat(s)
		if err != nil {
			return device.Reading{}, fmt.Errorf("float: %v", err)
		}
		v = scalar{typ: 'n', num: f}
	case "enum":
		s = strings.TrimSpace(s)
		vals := splitList(meta.Format)
		idx := -1
		for i, x := range vals {
			if x == s {
				idx = i
			}
		}
		if len(vals) > 0 && idx < 0 {
			return device.Reading{}, fmt.Errorf("enum %q is not one of $format %q", truncate(s, 32), truncate(meta.Format, 64))
		}
		if f, ok := onOff(s); ok && sig.Binary() {
			v = scalar{typ: 'n', num: f}
		} else if idx >= 0 {
			v = scalar{typ: 'n', num: float64(idx)}
		} else {
			return device.Reading{}, fmt.Errorf("enum %q has no $format to number it", truncate(s, 32))
		}
		label = clip(s, device.MaxLabelLen)
	case "string", "color":
		return device.Reading{}, fmt.Errorf("a %s value cannot become signal %s", meta.Datatype, sig)
	default: // not announced (yet): infer
		v = textScalar([]byte(s))
		if v.typ == 's' && !sig.Binary() {
			return device.Reading{}, fmt.Errorf("%q is not a number (no $datatype known)", truncate(s, 32))
		}
	}
	if prop == "contact" && v.typ == 'b' {
		v.b = !v.b // contact made: closed
	}
	r, err := b.reading(sig, v, meta.Unit, false)
	if err != nil {
		return device.Reading{}, err
	}
	r.Label = label
	return r, nil
}
