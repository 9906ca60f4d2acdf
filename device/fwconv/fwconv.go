// Package fwconv turns the firmware protocol's messages (firmware-proto/fwpb) into
// hearth readings, by the table of firmware-proto/SPEC.md §8.2. The serial source and
// the MQTT source's protobuf payloads share it, so a reading means the same whichever
// way it came.
package fwconv

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// signals maps the protocol's Signal enum to hearth's vocabulary, with the default unit
// of SPEC.md §8.2 for items that leave unit empty.
var signals = [...]struct {
	sig  device.Signal
	unit string
}{
	fwpb.Signal_SIGNAL_DOOR:        {device.SignalDoor, ""},
	fwpb.Signal_SIGNAL_ACTIVE:      {device.SignalActive, ""},
	fwpb.Signal_SIGNAL_POWER:       {device.SignalPower, "W"},
	fwpb.Signal_SIGNAL_ENERGY:      {device.SignalEnergy, "kWh"},
	fwpb.Signal_SIGNAL_TEMPERATURE: {device.SignalTemperature, "°C"},
	fwpb.Signal_SIGNAL_HUMIDITY:    {device.SignalHumidity, "%RH"},
	fwpb.Signal_SIGNAL_CYCLE:       {device.SignalCycle, ""},
	fwpb.Signal_SIGNAL_WATER:       {device.SignalWater, "L"},
	fwpb.Signal_SIGNAL_FILTER:      {device.SignalFilter, ""},
	fwpb.Signal_SIGNAL_INVENTORY:   {device.SignalInventory, ""},
	fwpb.Signal_SIGNAL_BATTERY:     {device.SignalBattery, "%"},
	fwpb.Signal_SIGNAL_ERROR:       {device.SignalError, ""},
}

// ErrItem is wrapped by every conversion error of one item (on serial, answered with
// Nack INVALID).
var ErrItem = errors.New("invalid item")

// Stamp fills the fields every item shares: identity, sequence and device time.
//
// Device time is wall_ms when the device knows it; otherwise, when the hub's own clock
// is set, the item is dated by the hub: receive time − (sent_mono_ms − mono_ms)
// (SPEC.md §10). Either is left zero when implausible.
func Stamp(r *device.Reading, dev string, kind device.Kind, boot, seq, monoMs uint64, wallMs int64, sentMono uint64, now time.Time) {
	*r = device.Reading{Device: dev, Kind: kind, Boot: boot, Seq: seq}
	switch {
	case wallMs > 0 && wallMs < maxWallMs:
		r.DeviceTime = time.UnixMilli(wallMs)
	case wallMs == 0 && now.After(ClockFloor) && sentMono >= monoMs && monoMs > 0:
		if age := sentMono - monoMs; age < uint64(maxItemAge/time.Millisecond) {
			r.DeviceTime = now.Add(-time.Duration(age) * time.Millisecond)
		}
	}
}

// ClockFloor is the earliest plausible wall time (2020-01-01): a clock before it was
// never set. maxWallMs (year 2200) bounds device timestamps.
var ClockFloor = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	maxWallMs  = 7258118400000 // 2200-01-01T00:00:00Z
	maxItemAge = 30 * 24 * time.Hour
)

// FromReading converts a fwpb.Reading.
func FromReading(r *device.Reading, it *fwpb.Reading) error {
	i := int(it.Signal)
	if i <= 0 || i >= len(signals) {
		return fmt.Errorf("%w: seq %d: unknown signal %d", ErrItem, it.Seq, it.Signal)
	}
	r.Signal, r.Value, r.Unit, r.Label, r.Aux = signals[i].sig, it.Value, it.Unit, it.Label, it.Aux
	if r.Unit == "" {
		r.Unit = signals[i].unit
	}
	return nil
}

// FromEvent converts a fwpb.Event (SPEC.md §8.2, "How the hub turns these into hearth
// readings").
func FromEvent(r *device.Reading, ev *fwpb.Event) error {
	switch e := ev.Event.(type) {
	case *fwpb.Event_Door:
		r.Signal, r.Label = device.SignalDoor, e.Door.GetDoor()
		switch e.Door.GetState() {
		case fwpb.DoorState_DOOR_STATE_OPENED:
			r.Value = 1
		case fwpb.DoorState_DOOR_STATE_CLOSED:
			r.Value = 0
		default:
			return fmt.Errorf("%w: seq %d: door event with state %d", ErrItem, ev.Seq, e.Door.GetState())
		}
	case *fwpb.Event_Cycle:
		r.Signal, r.Label, r.Aux = device.SignalCycle, e.Cycle.GetProgramme(), int64(e.Cycle.GetEnergyWh())
		switch e.Cycle.GetPhase() {
		case fwpb.CyclePhase_CYCLE_PHASE_STARTED:
			r.Value = 1
		case fwpb.CyclePhase_CYCLE_PHASE_FINISHED, fwpb.CyclePhase_CYCLE_PHASE_ABORTED:
			r.Value = 0
		default:
			return fmt.Errorf("%w: seq %d: cycle event with phase %d", ErrItem, ev.Seq, e.Cycle.GetPhase())
		}
	case *fwpb.Event_Error:
		r.Signal, r.Value, r.Label = device.SignalError, float64(e.Error.GetCode()), e.Error.GetText()
		if e.Error.GetCleared() {
			r.Aux = 1
		}
	default:
		return fmt.Errorf("%w: seq %d: event of no known kind", ErrItem, ev.Seq)
	}
	return nil
}

// FromChange converts a fwpb.InventoryChange.
func FromChange(r *device.Reading, c *fwpb.InventoryChange) error {
	q := float64(c.Quantity)
	if q == 0 {
		q = 1
	}
	switch c.Action {
	case fwpb.InventoryAction_INVENTORY_ACTION_ADDED:
	case fwpb.InventoryAction_INVENTORY_ACTION_REMOVED:
		q = -q
	default:
		return fmt.Errorf("%w: seq %d: inventory change with action %d", ErrItem, c.Seq, c.Action)
	}
	r.Signal, r.Value, r.Label, r.Aux = device.SignalInventory, q, c.Category, int64(c.BestBeforeDays)
	return nil
}

// Check validates a converted item as ingest would, so that one bad item is refused
// alone (Nack INVALID) instead of making ingest refuse its whole batch.
func Check(r *device.Reading) error {
	if r.Seq == 0 {
		return fmt.Errorf("%w: sequence number 0 (items are numbered from 1)", ErrItem)
	}
	if math.IsInf(r.Value, 0) {
		return fmt.Errorf("%w: seq %d: infinite value", ErrItem, r.Seq)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: seq %d: %v", ErrItem, r.Seq, err)
	}
	return nil
}
