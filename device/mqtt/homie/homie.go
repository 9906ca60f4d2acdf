package homie

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// Options configures a Homie adapter. Zero fields take the defaults shown.
type Options struct {
	// BaseTopic is the Homie root. Default "homie".
	BaseTopic string
	// MaxDevices caps the devices whose attributes are kept. Default 256.
	MaxDevices int
	// MaxNodes caps the nodes kept per device. Default 32.
	MaxNodes int
	// MaxProperties caps the properties kept per device. Default 256.
	MaxProperties int
	// OnAvailability, when set, is called from Learn for every $state message of a
	// mapped device. It must not block.
	OnAvailability func(mqtt.Availability)
}

// Device is what a Homie device said about itself in its $-attributes.
type Device struct {
	ID         string // Homie device id (the mapping's Name)
	Name       string // $name
	Version    string // $homie
	State      string // $state: init, ready, disconnected, sleeping, lost, alert
	Nodes      []Node
	Properties []Property // sorted by node, then id
}

// Node is one node of a Homie device.
type Node struct {
	ID         string
	Name       string   // $name
	Type       string   // $type
	Properties []string // $properties
}

// Property is one property of a Homie node.
type Property struct {
	Node, ID string
	Name     string // $name
	Datatype string // $datatype: integer, float, boolean, string, enum, color
	Unit     string // $unit
	Format   string // $format
}

// New returns the two halves of the Homie adapter for the mappings of source "homie"
// in ms (others are ignored): the Decoder reads property values; the Learner keeps what
// the devices say about themselves in their $-attributes ($datatype, $unit, $format,
// $state, ...) and hands it to the Decoder as a new value after each change. nil opts
// means defaults.
//
// Topics under the base topic:
//
//   - <base>/<device>/<node>/<property>: a value, the Decoder's. The property is
//     matched as "<node>.<property>" and then as "<property>" against the mapping's
//     Signals or mqtt.DefaultSignals of its kind. The value is read by its $datatype:
//     boolean "true" / "false" → 1/0, integer, float (NaN, Inf and out-of-range values
//     are malformed), enum (on/off words such as on/off, open/closed, true/false →
//     1/0, else the index of the value in $format; Label is the value); string and
//     color values cannot become readings. Before $datatype is known the type is
//     inferred. A property named "contact" follows the Zigbee convention: true means
//     closed (door 0). $unit converts to hearth's units (°F → °C, kW → W, Wh → kWh).
//   - <base>/<device>/$state: the Learner's: kept, and reported through
//     OnAvailability: ready, init and alert are online; disconnected, sleeping and
//     lost are offline.
//   - <base>/<device>/$name, $homie, $nodes; <base>/<device>/<node>/$name, $type,
//     $properties; <base>/<device>/<node>/<property>/$name, $datatype, $unit,
//     $format: the Learner's: kept (see Learner.Device); no reading. Other attributes
//     are ignored. The Decoder answers nil, nil for all of them.
//   - <base>/$broadcast/..., .../<property>/set: nil, nil (both).
//
// Attributes are kept only for mapped devices, within MaxDevices, MaxNodes and
// MaxProperties; a message that would exceed a cap is refused with mqtt.ErrLimit. A
// device without a mapping is mqtt.ErrUnknownDevice; a topic outside the base is
// mqtt.ErrNotMine (and, for the Learner, any topic that is not an attribute).
// DefaultOptions are the documented defaults: the one place they are written.
func DefaultOptions() Options {
	return Options{BaseTopic: mqtt.DefaultHomieBase, MaxDevices: mqtt.DefaultHomieMaxDevices, MaxNodes: mqtt.DefaultHomieMaxNodes,
		MaxProperties: mqtt.DefaultHomieMaxProperties}
}

func New(ms mqtt.Mappings, opts *Options) (*Decoder, *Learner, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	d := DefaultOptions()
	if o.BaseTopic == "" {
		o.BaseTopic = d.BaseTopic
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = d.MaxDevices
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = d.MaxNodes
	}
	if o.MaxProperties <= 0 {
		o.MaxProperties = d.MaxProperties
	}
	if err := conv.CheckBase(o.BaseTopic); err != nil {
		return nil, nil, fmt.Errorf("mqtt homie: base topic: %v", err)
	}
	idx, err := conv.Index(ms, mqtt.SourceHomie)
	if err != nil {
		return nil, nil, err
	}
	tab := new(atomic.Pointer[table])
	tab.Store(&table{})
	t := topics{base: o.BaseTopic, idx: idx}
	return &Decoder{topics: t, tab: tab}, &Learner{topics: t, opts: o, tab: tab}, nil
}

// table is what the Learner knows. A published table is never changed: the Learner
// builds the next one from it (copy-on-write) and publishes that.
type table struct {
	devices map[string]*devAttrs // by Homie device id
}

// devAttrs are one device's attributes; its nodes and properties are never changed
// once published either.
type devAttrs struct {
	name, version, state string
	nodes                map[string]*Node
	nodeOrder            []string // from $nodes
	props                map[string]*Property
}

func (d *devAttrs) clone() *devAttrs {
	if d == nil {
		return &devAttrs{nodes: map[string]*Node{}, props: map[string]*Property{}}
	}
	c := *d
	c.nodes, c.props = maps.Clone(d.nodes), maps.Clone(d.props)
	return &c
}

// maxAttr bounds an attribute payload.
const maxAttr = 1024

// topics parses the topics both halves share.
type topics struct {
	base string
	idx  map[string]*conv.Binding
}

// attribute reports whether levels below the base (device first) address an attribute
// ($-level after the device) or a $broadcast.
func attribute(lv []string) bool {
	if lv[0] == "$broadcast" {
		return true
	}
	for _, l := range lv[1:] {
		if strings.HasPrefix(l, "$") {
			return true
		}
	}
	return false
}

// parse checks a topic below the base and its payload; b is nil when there is
// nothing to read ($broadcast, a /set command).
func (t topics) parse(topic string, lv []string, payload []byte) (b *conv.Binding, err error) {
	if err := conv.CheckTopic(topic); err != nil {
		return nil, fmt.Errorf("%w: homie: %v", mqtt.ErrMalformed, err)
	}
	if lv[0] == "$broadcast" {
		return nil, nil
	}
	for i, l := range lv {
		if l == "" {
			return nil, fmt.Errorf("%w: homie topic %q: empty level %d", mqtt.ErrMalformed, conv.Truncate(topic, 128), i+2)
		}
	}
	if len(lv) < 2 {
		return nil, fmt.Errorf("%w: homie topic %q: want <device>/<node>/<property> or a $attribute", mqtt.ErrMalformed, conv.Truncate(topic, 128))
	}
	if len(lv) > 4 {
		return nil, fmt.Errorf("%w: homie topic %q: %d levels below the base (max 4)", mqtt.ErrMalformed, conv.Truncate(topic, 128), len(lv))
	}
	b = t.idx[lv[0]]
	if b == nil {
		return nil, fmt.Errorf("%w: homie device %q (topic %q)", mqtt.ErrUnknownDevice, conv.Truncate(lv[0], 128), conv.Truncate(topic, 128))
	}
	if len(lv) == 4 && lv[3] == "set" {
		return nil, nil
	}
	if !utf8.Valid(payload) {
		// Homie payloads are UTF-8 strings; anything else would end up in labels and
		// upstream category keys garbled.
		return nil, fmt.Errorf("%w: homie topic %q: payload is not UTF-8", mqtt.ErrMalformed, conv.Truncate(topic, 128))
	}
	if len(lv) == 2 && !strings.HasPrefix(lv[1], "$") {
		return nil, fmt.Errorf("%w: homie topic %q: a node needs a property or $attribute", mqtt.ErrMalformed, conv.Truncate(topic, 128))
	}
	if err := conv.CheckPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: homie topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	return b, nil
}

// Decoder reads the property values of mapped Homie devices, by the attributes the
// Learner published last. It is safe for concurrent use; Decode changes nothing.
type Decoder struct {
	topics
	tab *atomic.Pointer[table] // published by the Learner
}

// Decode implements mqtt.Decoder.
func (d *Decoder) Decode(topic string, payload []byte, _ time.Time) ([]device.Reading, error) {
	rest, ok := strings.CutPrefix(topic, d.base+"/")
	if !ok {
		return nil, mqtt.ErrNotMine
	}
	lv := strings.Split(rest, "/")
	b, err := d.parse(topic, lv, payload)
	if err != nil || b == nil || attribute(lv) {
		return nil, err // an attribute is the Learner's: no reading
	}
	if len(lv) != 3 {
		return nil, fmt.Errorf("%w: homie topic %q: want <device>/<node>/<property>", mqtt.ErrMalformed, conv.Truncate(topic, 128))
	}
	node, prop := lv[1], lv[2]
	sig, ok := b.Signal(strings.ToLower(node + "." + prop))
	if !ok || len(payload) == 0 {
		return nil, nil // not a signal; or a retained value being cleared
	}
	var meta Property
	if dev := d.tab.Load().devices[b.Name]; dev != nil {
		if p := dev.props[node+"/"+prop]; p != nil {
			meta = *p
		}
	}
	r, err := reading(b, sig, strings.ToLower(prop), meta, string(payload))
	if err != nil {
		return nil, fmt.Errorf("%w: homie topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	return []device.Reading{r}, nil
}

// Learner keeps the $-attributes of mapped Homie devices and hands them to its Decoder.
// It is safe for concurrent use.
type Learner struct {
	topics
	opts Options

	mu  sync.Mutex             // one Learn at a time builds the next table
	tab *atomic.Pointer[table] // read by the Decoder
}

// Device returns what device id said about itself so far.
func (l *Learner) Device(id string) (Device, bool) {
	d := l.tab.Load().devices[id]
	if d == nil {
		return Device{}, false
	}
	out := Device{ID: id, Name: d.name, Version: d.version, State: d.state}
	seen := map[string]bool{}
	for _, n := range d.nodeOrder { // $nodes order first, then nodes it did not list
		if seen[n] {
			continue
		}
		seen[n] = true
		c := Node{ID: n}
		if nd := d.nodes[n]; nd != nil {
			c = *nd
			c.Properties = slices.Clone(nd.Properties)
		}
		out.Nodes = append(out.Nodes, c)
	}
	for _, n := range conv.SortedKeys(d.nodes) {
		if !seen[n] {
			c := *d.nodes[n]
			c.Properties = slices.Clone(c.Properties)
			out.Nodes = append(out.Nodes, c)
		}
	}
	for _, k := range conv.SortedKeys(d.props) {
		out.Properties = append(out.Properties, *d.props[k])
	}
	return out, true
}

// Learn implements mqtt.Learner: it takes the attribute topics ($-levels) and
// $broadcast, and leaves values to the Decoder (mqtt.ErrNotMine).
func (l *Learner) Learn(topic string, payload []byte, now time.Time) error {
	rest, ok := strings.CutPrefix(topic, l.base+"/")
	if !ok {
		return mqtt.ErrNotMine
	}
	lv := strings.Split(rest, "/")
	if !attribute(lv) {
		return mqtt.ErrNotMine
	}
	b, err := l.parse(topic, lv, payload)
	if err != nil || b == nil {
		return err
	}
	if len(payload) > maxAttr {
		return fmt.Errorf("%w: homie topic %q: attribute of %d bytes (max %d)", mqtt.ErrMalformed, conv.Truncate(topic, 128), len(payload), maxAttr)
	}
	val := strings.TrimSpace(string(payload))
	id := lv[0]
	// Only the attributes hearth uses are kept; $fw/..., $stats/... and others are ignored.
	var set func(d *devAttrs) error
	switch {
	case len(lv) == 2 && lv[1] == "$state":
		var online bool
		switch val {
		case "ready", "init", "alert":
			online = true
		case "disconnected", "sleeping", "lost":
		default:
			return fmt.Errorf("%w: homie topic %q: $state %q is not one of init, ready, disconnected, sleeping, lost, alert", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Clip(val, 32))
		}
		if err := l.with(id, func(d *devAttrs) error { d.state = val; return nil }); err != nil {
			return fmt.Errorf("homie topic %q: %w", conv.Truncate(topic, 128), err)
		}
		conv.Report(l.opts.OnAvailability, mqtt.Availability{Source: mqtt.SourceHomie, Name: id, Device: b.Device, Online: online, State: val, At: now})
		return nil
	case len(lv) == 2 && lv[1] == "$name":
		set = func(d *devAttrs) error { d.name = conv.Clip(val, 128); return nil }
	case len(lv) == 2 && lv[1] == "$homie":
		set = func(d *devAttrs) error { d.version = conv.Clip(val, 32); return nil }
	case len(lv) == 2 && lv[1] == "$nodes":
		ids := splitList(val)
		if len(ids) > l.opts.MaxNodes {
			return fmt.Errorf("%w: homie topic %q: %d nodes (max %d)", mqtt.ErrLimit, conv.Truncate(topic, 128), len(ids), l.opts.MaxNodes)
		}
		set = func(d *devAttrs) error { d.nodeOrder = ids; return nil }
	case len(lv) == 3 && !strings.HasPrefix(lv[1], "$"):
		node := lv[1]
		var f func(n *Node)
		switch lv[2] {
		case "$name":
			f = func(n *Node) { n.Name = conv.Clip(val, 128) }
		case "$type":
			f = func(n *Node) { n.Type = conv.Clip(val, 128) }
		case "$properties":
			ps := splitList(val)
			if len(ps) > l.opts.MaxProperties {
				return fmt.Errorf("%w: homie topic %q: %d properties (max %d)", mqtt.ErrLimit, conv.Truncate(topic, 128), len(ps), l.opts.MaxProperties)
			}
			f = func(n *Node) { n.Properties = ps }
		default:
			return nil
		}
		set = func(d *devAttrs) error {
			n := Node{ID: node}
			if old := d.nodes[node]; old != nil {
				n = *old
			} else if len(d.nodes) >= l.opts.MaxNodes {
				return fmt.Errorf("%w: node %q would be node %d (max %d)", mqtt.ErrLimit, conv.Truncate(node, 64), len(d.nodes)+1, l.opts.MaxNodes)
			}
			f(&n)
			d.nodes[node] = &n
			return nil
		}
	case len(lv) == 4 && !strings.HasPrefix(lv[1], "$") && !strings.HasPrefix(lv[2], "$"):
		node, prop := lv[1], lv[2]
		var f func(p *Property)
		switch lv[3] {
		case "$name":
			f = func(p *Property) { p.Name = conv.Clip(val, 128) }
		case "$datatype":
			switch val {
			case "integer", "float", "boolean", "string", "enum", "color":
			default:
				return fmt.Errorf("%w: homie topic %q: $datatype %q is not one of integer, float, boolean, string, enum, color", mqtt.ErrMalformed, conv.Truncate(topic, 128), conv.Clip(val, 32))
			}
			f = func(p *Property) { p.Datatype = val }
		case "$unit":
			f = func(p *Property) { p.Unit = conv.Clip(val, device.MaxUnitLen) }
		case "$format":
			f = func(p *Property) { p.Format = val }
		default:
			return nil
		}
		set = func(d *devAttrs) error {
			k := node + "/" + prop
			p := Property{Node: node, ID: prop}
			if old := d.props[k]; old != nil {
				p = *old
			} else if len(d.props) >= l.opts.MaxProperties {
				return fmt.Errorf("%w: property %q would be property %d (max %d)", mqtt.ErrLimit, conv.Truncate(k, 64), len(d.props)+1, l.opts.MaxProperties)
			}
			f(&p)
			d.props[k] = &p
			return nil
		}
	default:
		return nil
	}
	if err := l.with(id, set); err != nil {
		return fmt.Errorf("homie topic %q: %w", conv.Truncate(topic, 128), err)
	}
	return nil
}

// with applies f to a copy of device id's attributes (new ones within MaxDevices) and
// publishes a new table holding it; on error nothing changes.
func (l *Learner) with(id string, f func(*devAttrs) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.tab.Load()
	old := cur.devices[id]
	if old == nil && len(cur.devices) >= l.opts.MaxDevices {
		return fmt.Errorf("%w: device %q would be device %d (max %d)", mqtt.ErrLimit, conv.Truncate(id, 64), len(cur.devices)+1, l.opts.MaxDevices)
	}
	d := old.clone()
	if err := f(d); err != nil {
		return err
	}
	next := &table{devices: maps.Clone(cur.devices)}
	if next.devices == nil {
		next.devices = make(map[string]*devAttrs, 1)
	}
	next.devices[id] = d
	l.tab.Store(next)
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, conv.Clip(p, 64))
		}
	}
	return out
}

// reading reads one value s of property prop by its announced attributes.
func reading(b *conv.Binding, sig device.Signal, prop string, meta Property, s string) (device.Reading, error) {
	var v conv.Scalar
	label := ""
	switch meta.Datatype {
	case "boolean":
		switch s {
		case "true":
			v = conv.Scalar{Type: 'b', Bool: true}
		case "false":
			v = conv.Scalar{Type: 'b', Bool: false}
		default:
			return device.Reading{}, fmt.Errorf("boolean %q: want true or false", conv.Truncate(s, 32))
		}
	case "integer":
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return device.Reading{}, fmt.Errorf("integer %q: %v", conv.Truncate(s, 32), errors.Unwrap(err))
		}
		v = conv.Scalar{Type: 'n', Num: float64(i)}
	case "float":
		f, err := conv.StrictFloat(s)
		if err != nil {
			return device.Reading{}, fmt.Errorf("float: %v", err)
		}
		v = conv.Scalar{Type: 'n', Num: f}
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
			return device.Reading{}, fmt.Errorf("enum %q is not one of $format %q", conv.Truncate(s, 32), conv.Truncate(meta.Format, 64))
		}
		if f, ok := conv.OnOff(s); ok && sig.Binary() {
			v = conv.Scalar{Type: 'n', Num: f}
		} else if idx >= 0 {
			v = conv.Scalar{Type: 'n', Num: float64(idx)}
		} else {
			return device.Reading{}, fmt.Errorf("enum %q has no $format to number it", conv.Truncate(s, 32))
		}
		label = conv.Clip(s, device.MaxLabelLen)
	case "string", "color":
		return device.Reading{}, fmt.Errorf("a %s value cannot become signal %s", meta.Datatype, sig)
	default: // not announced (yet): infer
		v = conv.TextScalar([]byte(s))
		if v.Type == 's' && !sig.Binary() {
			return device.Reading{}, fmt.Errorf("%q is not a number (no $datatype known)", conv.Truncate(s, 32))
		}
	}
	if prop == "contact" && v.Type == 'b' {
		v.Bool = !v.Bool // contact made: closed
	}
	r, err := b.Reading(sig, v, meta.Unit, false)
	if err != nil {
		return device.Reading{}, err
	}
	r.Label = label
	return r, nil
}
