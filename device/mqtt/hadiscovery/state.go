package hadiscovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/device/mqtt/internal/hatemplate"
)

// sameState compares a state with payload_on/off the way Home Assistant's rendered
// strings compare: case-insensitively, and numerically for numbers.
func sameState(v conv.Scalar, want string) bool {
	var got string
	switch v.Type {
	case 's':
		got = strings.TrimSpace(v.Str)
	case 'b':
		got = strconv.FormatBool(v.Bool)
	case 'n':
		if w, err := conv.StrictFloat(strings.TrimSpace(want)); err == nil {
			return w == v.Num
		}
		got = strconv.FormatFloat(v.Num, 'g', -1, 64)
	default:
		return false
	}
	return strings.EqualFold(got, strings.TrimSpace(want))
}

// StateOptions configures a State.
type StateOptions struct {
	// OnAvailability, when set, is called from Decode for a message on an accepted
	// entity's availability topic, once per hearth device. It must not block.
	OnAvailability func(mqtt.Availability)
}

// State turns the state topics of accepted Home Assistant entities into readings.
// Each accepted Proposal (see Learner.Accepted) says where the state is published
// and how to read it: the value_template picks the value from the payload (an
// entity whose key is missing from a JSON payload yields nothing), a binary_sensor or
// switch compares it with PayloadOn/PayloadOff (1/0), a sensor reads a number and
// converts its unit (°F → °C, kW → W, Wh → kWh). States "unknown", "unavailable" and
// "None" yield nothing. An entity whose state cannot be read is reported in a
// *mqtt.FieldErrors (its Property as the field) with the readings of the other entities
// on the same topic. The signal is the accepted mqtt.Mapping's Signals[Property],
// else the proposal's guessed Signal, else mqtt.DefaultSignals of its kind.
//
// A topic that no accepted entity reads is mqtt.ErrNotMine. When an entity reads a topic
// that a configured mapping reads too (a Zigbee2MQTT device's), put State and the
// adapters in a mqtt.Layered decoder: both are read. Messages on an entity's availability
// topic are reported through OnAvailability.
//
// State is safe for concurrent use; Replace swaps the accepted entities atomically.
type State struct {
	onAvail func(mqtt.Availability)
	tab     atomic.Pointer[haTable]
}

type haTable struct {
	byState map[string][]*haEntity
	byAvail map[string][]*haEntity
}

type haEntity struct {
	p   Proposal
	b   *conv.Binding
	sig device.Signal
	tpl hatemplate.Template
}

// NewState returns a State reading the accepted proposals. nil opts means
// defaults.
func NewState(accepted []Proposal, opts *StateOptions) (*State, error) {
	s := &State{}
	if opts != nil {
		s.onAvail = opts.OnAvailability
	}
	if err := s.Replace(accepted); err != nil {
		return nil, err
	}
	return s, nil
}

// Replace makes State read exactly the accepted proposals from now on. On error
// the previous set stays in force.
func (s *State) Replace(accepted []Proposal) error {
	t := &haTable{byState: make(map[string][]*haEntity), byAvail: make(map[string][]*haEntity)}
	for i, p := range accepted {
		e, err := newHAEntity(p.clone())
		if err != nil {
			return fmt.Errorf("mqtt homeassistant: accepted[%d] (%q): %v", i, conv.Truncate(p.Mapping.Name, 64), err)
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
	if p.Mapping.Source != mqtt.SourceHomeAssistant {
		return nil, fmt.Errorf("mapping source %q, want %q", p.Mapping.Source, mqtt.SourceHomeAssistant)
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
	if err := conv.CheckTopic(p.StateTopic); err != nil {
		return nil, fmt.Errorf("state topic: %v", err)
	}
	if p.AvailabilityTopic != "" {
		if err := conv.CheckTopic(p.AvailabilityTopic); err != nil {
			return nil, fmt.Errorf("availability topic: %v", err)
		}
	}
	switch p.Component {
	case "binary_sensor", "switch", "sensor":
	default:
		return nil, fmt.Errorf("component %q cannot be read", p.Component)
	}
	tpl, err := hatemplate.Parse(p.ValueTemplate)
	if err != nil {
		return nil, fmt.Errorf("value_template: %v", err)
	}
	b := conv.NewBinding(p.Mapping)
	prop := strings.ToLower(p.Property)
	var sig device.Signal
	switch {
	case len(p.Mapping.Signals) > 0:
		sig, _ = b.Signal(prop)
	case p.Signal.Valid():
		sig = p.Signal
	default:
		sig = mqtt.DefaultSignals(p.Mapping.Kind)[prop]
	}
	if sig == "" {
		return nil, fmt.Errorf("no signal for property %q (add it to the mapping's signals)", prop)
	}
	return &haEntity{p: p, b: b, sig: sig, tpl: tpl}, nil
}

// Decode implements mqtt.Decoder. It reads the entities of the last Replace and
// changes nothing.
func (s *State) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	t := s.tab.Load()
	ents := t.byState[topic]
	if len(ents) == 0 {
		if av := t.byAvail[topic]; len(av) > 0 {
			return nil, s.availability(topic, av, payload, now)
		}
		return nil, mqtt.ErrNotMine
	}
	if err := conv.CheckPayload(payload); err != nil {
		return nil, fmt.Errorf("%w: homeassistant state topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	var (
		obj map[string]json.RawMessage
		out []device.Reading
		bad = mqtt.FieldErrors{Topic: topic}
	)
	for _, e := range ents {
		r, ok, err := e.read(payload, &obj)
		if err != nil {
			// The other entities on this topic are still read.
			bad.Add(e.p.Property, fmt.Errorf("entity %q: %v", conv.Truncate(e.p.Mapping.Name, 64), err))
			continue
		}
		if ok {
			out = append(out, r)
		}
	}
	return bad.Result(out)
}

func (e *haEntity) read(payload []byte, obj *map[string]json.RawMessage) (device.Reading, bool, error) {
	v, found, err := e.tpl.Extract(payload, obj)
	if err != nil || !found || v.Type == 'z' || v.Type == 's' && hatemplate.Unknown(v.Str) {
		return device.Reading{}, false, err
	}
	if e.p.Component != "sensor" {
		switch {
		case sameState(v, e.p.PayloadOn):
			v = conv.Scalar{Type: 'n', Num: 1}
		case sameState(v, e.p.PayloadOff):
			v = conv.Scalar{Type: 'n', Num: 0}
		default:
			return device.Reading{}, false, fmt.Errorf("state %s is neither payload_on %q nor payload_off %q", v, conv.Truncate(e.p.PayloadOn, 32), conv.Truncate(e.p.PayloadOff, 32))
		}
	}
	r, err := e.b.Reading(e.sig, v, e.p.Unit, true)
	if err != nil {
		return device.Reading{}, false, err
	}
	return r, true, nil
}

func (s *State) availability(topic string, ents []*haEntity, payload []byte, now time.Time) error {
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
			return fmt.Errorf("%w: homeassistant availability topic %q: %q is neither %q nor %q", mqtt.ErrMalformed, conv.Truncate(topic, 128),
				conv.Truncate(state, 32), conv.Truncate(e.p.PayloadAvailable, 32), conv.Truncate(e.p.PayloadNotAvailable, 32))
		}
		if seen[e.p.Mapping.Device] {
			continue
		}
		seen[e.p.Mapping.Device] = true
		conv.Report(s.onAvail, mqtt.Availability{Source: mqtt.SourceHomeAssistant, Name: e.p.Mapping.Name, Device: e.p.Mapping.Device, Online: online, State: state, At: now})
	}
	return nil
}
