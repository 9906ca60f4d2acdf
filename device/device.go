package device

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is an appliance kind from hearth's vocabulary.
type Kind string

// The kinds hearth knows. Rules and summaries name kinds, never brands.
const (
	KindFridge         Kind = "fridge"
	KindFreezer        Kind = "freezer"
	KindMicrowave      Kind = "microwave"
	KindOven           Kind = "oven"
	KindStove          Kind = "stove"
	KindToaster        Kind = "toaster"
	KindKettle         Kind = "kettle"
	KindDishwasher     Kind = "dishwasher"
	KindWasher         Kind = "washer"
	KindDryer          Kind = "dryer"
	KindKitchenCabinet Kind = "kitchen_cabinet"
	KindEntryDoor      Kind = "entry_door"
	KindMotion         Kind = "motion"
	KindPlug           Kind = "plug"
	KindSensor         Kind = "sensor"
)

var kinds = []Kind{KindFridge, KindFreezer, KindMicrowave, KindOven, KindStove, KindToaster,
	KindKettle, KindDishwasher, KindWasher, KindDryer, KindKitchenCabinet, KindEntryDoor,
	KindMotion, KindPlug, KindSensor}

// Kinds returns every known kind, in a stable order.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

// Valid reports whether k is in the vocabulary.
func (k Kind) Valid() bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Check returns nil for a kind of the vocabulary, else an error naming the kind
// and listing the known ones, for a person to pick from.
func (k Kind) Check() error {
	if k.Valid() {
		return nil
	}
	names := make([]string, len(kinds))
	for i, x := range kinds {
		names[i] = string(x)
	}
	return fmt.Errorf("unknown kind %q (known: %s)", k, strings.Join(names, ", "))
}

// Kitchen reports whether appliances of kind k are used to prepare food.
func (k Kind) Kitchen() bool {
	switch k {
	case KindFridge, KindFreezer, KindMicrowave, KindOven, KindStove, KindToaster, KindKettle,
		KindDishwasher, KindKitchenCabinet:
		return true
	}
	return false
}

// Signal names what a reading measures.
type Signal string

// The signals hearth knows, with the meaning of Value for each.
const (
	SignalDoor        Signal = "door"        // 1 open, 0 closed
	SignalActive      Signal = "active"      // 1 on/active, 0 off (contacts, motion, plug state)
	SignalPower       Signal = "power"       // watts
	SignalEnergy      Signal = "energy"      // cumulative kWh
	SignalTemperature Signal = "temperature" // °C
	SignalHumidity    Signal = "humidity"    // %RH
	SignalCycle       Signal = "cycle"       // 1 started, 0 finished; Label is the programme, Aux the energy in Wh on finish
	SignalWater       Signal = "water"       // litres dispensed by this event (an increment)
	SignalFilter      Signal = "filter"      // 1 when a water filter was changed
	SignalInventory   Signal = "inventory"   // +1 item stocked, -1 item taken; Label is the category, Aux the best-before date (days since 1970-01-01)
	SignalBattery     Signal = "battery"     // percent
	SignalError       Signal = "error"       // error code in Value, text in Label
	SignalPressure    Signal = "pressure"    // air pressure, hPa
	SignalWeight      Signal = "weight"      // grams on a load cell (a shelf, a bin)
)

var signals = []Signal{SignalDoor, SignalActive, SignalPower, SignalEnergy, SignalTemperature,
	SignalHumidity, SignalCycle, SignalWater, SignalFilter, SignalInventory, SignalBattery, SignalError,
	SignalPressure, SignalWeight}

// Signals returns every known signal, in a stable order.
func Signals() []Signal { return append([]Signal(nil), signals...) }

// Valid reports whether s is in the vocabulary.
func (s Signal) Valid() bool {
	for _, x := range signals {
		if x == s {
			return true
		}
	}
	return false
}

// Binary reports whether the signal is an on/off state whose 0→1 transitions are
// activations (a door opening, a contact closing, a cycle starting).
func (s Signal) Binary() bool {
	return s == SignalDoor || s == SignalActive || s == SignalCycle
}

// Limits on the text fields of a Reading; longer values are rejected by Validate.
const (
	MaxIDLen    = 64
	MaxLabelLen = 64
	MaxUnitLen  = 16
)

// Reading is one observation of one appliance.
//
// Sources fill Device, Kind, Signal, Value and whatever of Unit, Label, Aux, Boot, Seq
// and DeviceTime the device provides; edge/ingest stamps HubTime and Mono.
type Reading struct {
	Device string  // local device id: [A-Za-z0-9][A-Za-z0-9_.-]*, at most MaxIDLen bytes (ValidID)
	Kind   Kind    // appliance kind
	Signal Signal  // what was measured
	Value  float64 // finite; meaning per Signal
	Unit   string  // optional unit as the device reported it
	Label  string  // optional short text: programme, food category, error text
	Aux    int64   // optional signal-specific integer (see the Signal constants)

	// Boot and Seq identify the reading at its device: a device that counts its
	// readings gives each boot a new Boot id and numbers readings from 1 within it.
	// Zero Seq means the device does not number its readings (no de-duplication).
	Boot uint64
	Seq  uint64

	DeviceTime time.Time // when the device says it happened; zero if it has no clock
	HubTime    time.Time // hub wall time at ingest
}

// Time is the reading's event time: the device's clock when ingest trusted it, else the
// hub's. Ingest clears DeviceTime when it is implausible (see edge/ingest).
func (r *Reading) Time() time.Time {
	if !r.DeviceTime.IsZero() {
		return r.DeviceTime
	}
	return r.HubTime
}

// ErrInvalid is wrapped by every validation error of a Reading.
var ErrInvalid = errors.New("invalid reading")

// Validate checks the fields a source is responsible for.
func (r *Reading) Validate() error {
	if err := ValidID(r.Device); err != nil {
		return fmt.Errorf("%w: device: %v", ErrInvalid, err)
	}
	if !r.Kind.Valid() {
		return fmt.Errorf("%w: device %q: unknown kind %q", ErrInvalid, r.Device, r.Kind)
	}
	if !r.Signal.Valid() {
		return fmt.Errorf("%w: device %q: unknown signal %q", ErrInvalid, r.Device, r.Signal)
	}
	if r.Value != r.Value || r.Value > maxValue || r.Value < -maxValue {
		return fmt.Errorf("%w: device %q signal %s: value %v is not a finite number within ±1e15", ErrInvalid, r.Device, r.Signal, r.Value)
	}
	if len(r.Unit) > MaxUnitLen || len(r.Label) > MaxLabelLen {
		return fmt.Errorf("%w: device %q signal %s: unit or label too long", ErrInvalid, r.Device, r.Signal)
	}
	return nil
}

const maxValue = 1e15

// ValidID checks a device id: 1..MaxIDLen bytes of ASCII letters, digits, '_', '-'
// and '.', the first a letter or digit. Every place an id enters hearth (the registry,
// the broker, ingest, serial Hello, configured and accepted mappings) checks it here.
// The rule keeps an id safe as a URL path segment, a file name and a command-line
// argument: never "." or "..", never hidden, never taken for a flag.
func ValidID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("id longer than %d bytes", MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		switch {
		case i == 0 && !alnum:
			return fmt.Errorf("id %q starts with %q (an id starts with a letter or digit)", id, c)
		case !alnum && c != '_' && c != '-' && c != '.':
			return fmt.Errorf("id %q has character %q at %d (allowed: letters, digits, _ - .)", id, c, i)
		}
	}
	return nil
}

// Sink takes readings durably. edge/ingest implements it.
//
// Submit may block while the sink applies back-pressure. done is called exactly once,
// after every reading of rs is committed to stable storage (err == nil) or none is
// (err != nil): from the committing goroutine, or — for a batch refused at once
// (invalid, too large, store closed) — before Submit returns. done must not block. Readings a device already delivered
// (same Device, Boot and Seq) count as committed. Submit does not keep rs after done.
type Sink interface {
	Submit(rs []Reading, done func(error))
}

// Commit submits rs to sink and waits until they are durable or ctx ends.
func Commit(ctx context.Context, sink Sink, rs []Reading) error {
	ch := make(chan error, 1)
	sink.Submit(rs, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Source is where readings come from: a serial port, an MQTT broker, GPIO pins.
//
// Run reads until ctx is cancelled, handing readings to sink and acknowledging them to
// the device only once sink reports them durable. It returns nil after ctx is
// cancelled, or an error when the source cannot go on.
type Source interface {
	Name() string
	Run(ctx context.Context, sink Sink) error
}
