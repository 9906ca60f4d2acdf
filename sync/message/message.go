// Package message defines what hearth sends upstream, independent of how it travels:
// a device's day (DeviceDay), a tag's change (TagChange), the household's active tags
// (Profile) and the hub's daily health (Health). sync/summary makes them; the
// transports (sync/transport) map them to their wire formats; docs/sync.md shows each.
//
// A message is stored in the outbox as a store.Message whose Body is the JSON of one
// of these types (the field names shown on each).
package message

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// Types: the Type of a store.Message and the "type" of its JSON body.
const (
	TypeDeviceDay = "device_day"
	TypeTag       = "tag"
	TypeProfile   = "profile"
	TypeHealth    = "health"
	TypeErasure   = "erasure"
)

// DeviceDay is the summary of one device over one local day.
type DeviceDay struct {
	Type      string                    `json:"type"` // "device_day"
	ID        string                    `json:"id"`   // deterministic message id
	Household string                    `json:"household"`
	Device    string                    `json:"device"` // pseudonym
	Kind      device.Kind               `json:"kind"`
	Date      string                    `json:"date"`
	Signals   map[device.Signal]*Signal `json:"signals"`
	Rules     string                    `json:"rules_version,omitempty"` // the tag rule set in force when it was made
}

// Signal summarises one signal of a DeviceDay. Fields that do not apply are left out.
type Signal struct {
	N          uint32   `json:"n"`
	Min        *float64 `json:"min,omitempty"`
	Max        *float64 `json:"max,omitempty"`
	Mean       *float64 `json:"mean,omitempty"`
	Sum        *float64 `json:"sum,omitempty"`
	Sessions   uint32   `json:"sessions,omitempty"`
	OnSeconds  float64  `json:"on_s,omitempty"`
	LongestSec float64  `json:"longest_s,omitempty"`
	Over60s    uint32   `json:"over_60s,omitempty"`
	// ByPart counts activations in the four parts of the day: 00-06, 06-12, 12-18, 18-24.
	ByPart   *[4]uint32        `json:"by_part,omitempty"`
	Cycles   uint32            `json:"cycles,omitempty"`
	EnergyWh float64           `json:"energy_wh,omitempty"`
	Stocked  map[string]uint32 `json:"stocked,omitempty"`
	Taken    map[string]uint32 `json:"taken,omitempty"`
}

// TagChange is a tag's change, as sent upstream.
type TagChange struct {
	Type      string  `json:"type"` // "tag"
	ID        string  `json:"id"`
	Household string  `json:"household"`
	Tag       string  `json:"tag"`
	Score     float64 `json:"score"`
	// Confidence is how much evidence backed the score, in [0,1] (the rule's
	// confidence, docs/tags.md).
	Confidence float64            `json:"confidence"`
	Active     bool               `json:"active"`
	Status     string             `json:"status"`
	Reason     string             `json:"reason"`
	At         time.Time          `json:"at"`
	Evidence   map[string]float64 `json:"evidence,omitempty"`
	Rules      string             `json:"rules_version,omitempty"`
}

// Profile is the household's active tags, made when that set changes: what a CDP
// keeps as the profile's traits (Segment: an identify call).
type Profile struct {
	Type       string             `json:"type"` // "profile"
	ID         string             `json:"id"`
	Household  string             `json:"household"`
	At         time.Time          `json:"at"`
	ActiveTags []string           `json:"active_tags"`      // sorted
	Scores     map[string]float64 `json:"scores,omitempty"` // of the active tags
	Rules      string             `json:"rules_version,omitempty"`
}

// Health is the daily message about the hub itself: what its store evicted, refused
// and recovered from. It names no device and carries no reading.
type Health struct {
	Type      string       `json:"type"` // "health"
	ID        string       `json:"id"`
	Household string       `json:"household"`
	Date      string       `json:"date"` // the hub's local day it reports on: At less its sync.day_close_spread offset, so the day before when made just after midnight
	At        time.Time    `json:"at"`   // hub time it was made (UTC)
	Store     store.Health `json:"store"`
	Rules     string       `json:"rules_version,omitempty"`
}

// Erasure asks the receiver to delete what it holds about a device (Scope "device":
// Device is its pseudonym) or about the whole household (Scope "household"). Its
// Household is the pseudonym the data was sent under (after `forget --household`
// the key is replaced, so it is no longer the batch's). It needs no consent
// (privacy.Erasure): it is sent whatever the household withdrew.
type Erasure struct {
	Type        string    `json:"type"` // "erasure"
	ID          string    `json:"id"`
	Household   string    `json:"household"`
	Scope       string    `json:"scope"`
	Device      string    `json:"device,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
}

// Decode returns the message m carries: a *DeviceDay, *TagChange, *Profile, *Health
// or *Erasure.
func Decode(m store.Message) (any, error) {
	var v any
	switch m.Type {
	case TypeDeviceDay:
		v = new(DeviceDay)
	case TypeTag:
		v = new(TagChange)
	case TypeProfile:
		v = new(Profile)
	case TypeHealth:
		v = new(Health)
	case TypeErasure:
		v = new(Erasure)
	default:
		return nil, fmt.Errorf("message: %s: unknown type %q", m.ID, m.Type)
	}
	if err := json.Unmarshal(m.Body, v); err != nil {
		return nil, fmt.Errorf("message: %s (%s): %w", m.ID, m.Type, err)
	}
	return v, nil
}

// DayEnd is the end of a local date (the start of the next day) in loc: the time of
// a DeviceDay.
func DayEnd(date string, loc *time.Location) time.Time {
	d, err := time.ParseInLocation(time.DateOnly, date, loc)
	if err != nil {
		return time.Time{}
	}
	return d.AddDate(0, 0, 1)
}
