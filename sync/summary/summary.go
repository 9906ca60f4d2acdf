// Package summary builds what hearth sends upstream instead of raw readings: one
// compact summary per device per closed local day, and the changes of tags. Each
// passes the household's consent and carries only pseudonymous identifiers; it is put
// in the outbox in the same transaction that advances the builder's cursors, so a
// crash neither loses nor repeats a summary.
package summary

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/rollup"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// Cursor names in the store.
const (
	DaysCursor = "sync.days" // + NUL + device: the last local date summarised, as YYYYMMDD
	TagsCursor = "sync.tags" // the last tag-log entry summarised
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
}

// Options configure a Builder.
type Options struct {
	Location   *time.Location
	Consent    privacy.Consent
	Registerer prometheus.Registerer
	Now        func() time.Time // hub clock of the daily health message (default time.Now)
	// Simulated reports whether a local device id is one of this agent's simulated
	// devices, whose summaries carry no personal data and are written without
	// consent. The agent answers from the simulated household it built — never from
	// an id's look, which a real device could imitate. Nil: no device is simulated.
	Simulated func(device string) bool
	// CloseGrace is how far past a local day's end a device's clock must be before the
	// day is summarised (default 2h; sync.day_close_grace). Readings for a day that
	// arrive later still update the rollups on the hub, but not the sent summary.
	CloseGrace time.Duration
}

// Builder makes summaries and puts them in the outbox.
type Builder struct {
	st        *store.Store
	loc       *time.Location
	consent   privacy.Consent
	pseudo    *privacy.Pseudonymizer
	simulated func(string) bool
	grace     time.Duration
	household string
	install   string
	now       func() time.Time

	made     *prometheus.CounterVec
	withheld *prometheus.CounterVec
	set      *metricset.Set
}

// NewBuilder returns a Builder over st.
func NewBuilder(st *store.Store, o *Options) *Builder {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := privacy.NewPseudonymizer(st.Secret())
	if opts.CloseGrace <= 0 {
		opts.CloseGrace = 2 * time.Hour
	}
	if opts.Simulated == nil {
		opts.Simulated = func(string) bool { return false }
	}
	b := &Builder{st: st, loc: opts.Location, consent: opts.Consent, pseudo: p, simulated: opts.Simulated, grace: opts.CloseGrace,
		household: p.ID("household", st.InstallID()), install: st.InstallID(), now: opts.Now,
		made: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_summaries_total",
			Help: "Summaries put in the outbox, by type (device_day, tag)."}, []string{"type"}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_withheld_total",
			Help: "Summaries not sent because the household has not consented to their category, by type."}, []string{"type"}),
	}
	for _, t := range []string{"device_day", "tag", "health"} {
		b.made.WithLabelValues(t)
		b.withheld.WithLabelValues(t)
	}
	b.set = metricset.Must(opts.Registerer, b.made, b.withheld)
	return b
}

// Unregister removes the builder's metrics.
func (b *Builder) Unregister() { b.set.Unregister() }

// messageID is a deterministic id for a message: the same summary always gets the
// same id (the CDP de-duplicates redeliveries on it). It is a keyed HMAC of the parts,
// so nobody without the install's secret can test guesses of local device ids against
// it (the install id alone is not secret: it is logged and shown by `hearth status`).
func (b *Builder) messageID(parts ...string) string {
	return b.pseudo.ID("message", strings.Join(parts, "\x00"))
}

func dateNum(d string) uint64 {
	n, _ := strconv.ParseUint(strings.ReplaceAll(d, "-", ""), 10, 64)
	return n
}

func numDate(n uint64) string {
	if n == 0 {
		return ""
	}
	s := fmt.Sprintf("%08d", n)
	return s[:4] + "-" + s[4:6] + "-" + s[6:]
}

// Step summarises every local day that closed since the last step (a day closes when
// the data clock has passed it) and every new tag change. It returns the number of
// summaries put in the outbox.
func (b *Builder) Step() (int, error) {
	n := 0
	err := b.st.Update(func(tx *store.Tx) error {
		states, err := rollup.States(tx)
		if err != nil {
			return err
		}
		// A device's day is closed once that device's own clock has passed it: devices
		// report at different paces (a washer may upload a cycle an hour late).
		devClock := map[string]time.Time{}
		for k, st := range states {
			if st.LastAt.After(devClock[k.Device]) {
				devClock[k.Device] = st.LastAt
			}
		}
		// Household-level messages leave without consent only from a hub whose every
		// device is simulated — and a hub with no device at all is not such a hub.
		known := b.st.Devices()
		allSim := len(known) > 0
		for _, d := range known {
			allSim = allSim && b.simulated(d.ID)
		}
		devs := make([]string, 0, len(devClock))
		for dev := range devClock {
			devs = append(devs, dev)
		}
		sort.Strings(devs)
		// Scan from the day after the oldest cursor; a device without one (new, or
		// never summarised) needs everything.
		from := "0000-00-00"
		for i, dev := range devs {
			d := numDate(tx.Cursor(DaysCursor + "\x00" + dev))
			if d == "" {
				from = "0000-00-00"
				break
			}
			if i == 0 || d+"\x01" < from {
				from = d + "\x01" // the first key after every key of that date
			}
		}
		days, err := rollup.Window(tx, from, "9999-99-99")
		if err != nil {
			return err
		}
		byDev := map[[2]string][]rollup.Day{}
		for _, d := range days {
			byDev[[2]string{d.Date, d.Device}] = append(byDev[[2]string{d.Date, d.Device}], d)
		}
		keys := make([][2]string, 0, len(byDev))
		for k := range byDev {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
		})
		newest := map[string]string{}
		for _, k := range keys {
			date, dev := k[0], k[1]
			// Closed once the device's own clock is CloseGrace past the day's end: a
			// reading that arrives a little late (a cycle's end, a batch uploaded after
			// a reconnect) still makes its day's summary.
			today := devClock[dev].Add(-b.grace).In(b.loc).Format(time.DateOnly)
			if date >= today || date <= numDate(tx.Cursor(DaysCursor+"\x00"+dev)) {
				continue // not closed yet, or already sent
			}
			newest[dev] = max(newest[dev], date)
			if !b.consent.Allows(privacy.Usage) && !b.simulated(dev) {
				b.withheld.WithLabelValues("device_day").Inc()
				continue
			}
			if err := put(tx, b.deviceDay(date, dev, byDev[k])); err != nil {
				return err
			}
			b.made.WithLabelValues("device_day").Inc()
			n++
		}
		for dev, date := range newest {
			if err := tx.SetCursor(DaysCursor+"\x00"+dev, dateNum(date)); err != nil {
				return err
			}
		}
		if k, err := b.health(tx, allSim); err != nil { // health.go
			return err
		} else {
			n += k
		}
		// Tag changes.
		tagCur := tx.Cursor(TagsCursor)
		var lastTag uint64
		var changes []tagging.Change
		if err := tx.Range(store.TagLog, store.Key(tagCur+1), func(k, v []byte) error {
			var c tagging.Change
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("summary: tag log %d: %w", store.SeqOf(k), err)
			}
			changes = append(changes, c)
			lastTag = store.SeqOf(k)
			return nil
		}); err != nil {
			return err
		}
		for _, c := range changes {
			var t tagging.Tag
			if v := tx.Get(store.Tags, []byte(c.Tag)); v != nil {
				_ = json.Unmarshal(v, &t)
			}
			if !b.consent.Allows(t.Consent) && !allSim {
				b.withheld.WithLabelValues("tag").Inc()
				continue
			}
			msg := TagChange{Type: "tag", Household: b.household, Tag: c.Tag, Score: round(c.Score, 3), Confidence: round(c.Confidence, 3), Active: c.Active,
				Status: c.Status, Reason: c.Reason, At: c.At.UTC(), Evidence: t.Evidence}
			msg.ID = b.messageID("tag", c.Tag, c.At.UTC().Format(time.RFC3339Nano), c.Reason)
			if err := put(tx, msg); err != nil {
				return err
			}
			b.made.WithLabelValues("tag").Inc()
			n++
		}
		if lastTag > 0 {
			return tx.SetCursor(TagsCursor, lastTag)
		}
		return nil
	})
	return n, err
}

func (b *Builder) deviceDay(date, dev string, days []rollup.Day) DeviceDay {
	out := DeviceDay{Type: "device_day", Household: b.household, Device: b.pseudo.ID("device", dev), Date: date,
		Signals: map[device.Signal]*Signal{}}
	out.ID = b.messageID("device_day", dev, date)
	for i := range days {
		d := &days[i]
		out.Kind = d.Kind
		s := &Signal{N: d.Stats.Count}
		switch {
		case d.Signal.Binary():
			s.Sessions = d.Sessions.Count
			s.OnSeconds = round(d.Sessions.TotalSec, 0)
			s.LongestSec = round(d.Sessions.LongestSec, 0)
			s.Over60s = d.Sessions.Over(60)
			var parts [4]uint32
			for h, a := range d.Activations {
				parts[h/6] += uint32(a)
			}
			s.ByPart = &parts
		case d.Signal == device.SignalWater || d.Signal == device.SignalFilter:
			s.Sum = ptr(round(d.Stats.Sum, 3))
		case d.Signal == device.SignalInventory:
			s.Stocked, s.Taken = d.Inventory.Stocked, d.Inventory.Taken
		default:
			s.Min, s.Max, s.Mean = ptr(round(d.Stats.Min, 2)), ptr(round(d.Stats.Max, 2)), ptr(round(d.Stats.Mean(), 2))
			if d.Signal == device.SignalPower {
				s.Cycles, s.EnergyWh = d.Cycles.Count, round(d.Cycles.EnergyWh, 1)
			}
		}
		out.Signals[d.Signal] = s
	}
	return out
}

func ptr(v float64) *float64 { return &v }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// put appends one message to the outbox: 8 bytes of enqueue time (Unix ns), then JSON.
func put(tx *store.Tx, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("summary: encode: %w", err)
	}
	seq, err := tx.NextSeq(store.Outbox)
	if err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(body)), uint64(time.Now().UnixNano()))
	return tx.Put(store.Outbox, store.Key(seq), append(v, body...))
}
