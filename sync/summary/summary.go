// Package summary builds what hearth sends upstream instead of raw readings: one
// compact summary per device per closed local day, and the changes of tags. Each
// passes the household's consent and carries only pseudonymous identifiers; it is put
// in the outbox in the same transaction that advances the builder's cursors, so a
// crash neither loses nor repeats a summary.
package summary

import (
	"crypto/sha256"
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
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// Cursor names in the store.
const (
	DaysCursor = "sync.days" // + NUL + device: the last local date summarised, as YYYYMMDD
	TagsCursor = "sync.tags" // the last tag-log entry summarised
)

// The messages, as sync/message defines them.
type (
	DeviceDay = message.DeviceDay
	Signal    = message.Signal
	TagChange = message.TagChange
	Profile   = message.Profile
	Health    = message.Health
)

// Message types.
const (
	TypeDeviceDay = message.TypeDeviceDay
	TypeTag       = message.TypeTag
	TypeProfile   = message.TypeProfile
	TypeHealth    = message.TypeHealth
)

// Options configure a Builder.
type Options struct {
	Location *time.Location
	Consent  privacy.Consent
	// ConsentNow, when set, is the consent in force (privacy.Live.Now), read at
	// every step instead of Consent.
	ConsentNow func() privacy.Consent
	// Key is the pseudonym key (sync/privacy's key file); nil: the secret an older
	// store kept (store.Secret), for tests and tools.
	Key        []byte
	Registerer prometheus.Registerer
	// Now is the hub's clock (default time.Now): it dates the daily health message
	// and closes the days of devices that went quiet.
	Now func() time.Time
	// Simulated reports whether a local device id is one of this agent's simulated
	// devices, whose summaries carry no personal data and are written without
	// consent. The agent answers from the simulated household it built — never from
	// an id's look, which a real device could imitate. Nil: no device is simulated.
	Simulated func(device string) bool
	// CloseGrace is how far past a local day's end a device's clock must be before the
	// day is summarised (default 2h; sync.day_close_grace). Readings for a day that
	// arrive later still update the rollups on the hub, but not the sent summary. A
	// device that has sent nothing for CloseGrace has its days closed by the hub's
	// clock instead.
	CloseGrace time.Duration
	// CloseSpread spreads a fleet's nightly day close: each hub closes its days (and
	// makes its health message) an offset later, in [0, CloseSpread), fixed by its
	// household pseudonym (sync.day_close_spread; 0: none). Without it every hub of a
	// time zone closes its days at the same minute of the night and sends them at
	// once.
	CloseSpread time.Duration
	// RulesVersion names the tag rule set in force; every message carries it.
	RulesVersion string
	// TagScoreStep is how far a tag's score must move from the score last sent for a
	// change to be sent (default 0.1; sync.tag_score_step). A tag turning on or off,
	// or changing status, is always sent.
	TagScoreStep float64
	// MaxPendingBytes caps what waits to go upstream (queued and batched messages);
	// 0: no cap (sync.outbox_max_bytes). Over it, queued tag score changes are folded
	// to each tag's latest, and if that is not enough the builder makes nothing until
	// delivery has made room: the days wait in the rollups, none is dropped.
	MaxPendingBytes int
}

// Builder makes summaries and puts them in the outbox.
type Builder struct {
	st        *store.Store
	loc       *time.Location
	consent   func() privacy.Consent
	cur       privacy.Consent // as of the step running
	pseudo    *privacy.Pseudonymizer
	simulated func(string) bool
	grace     time.Duration
	offset    time.Duration // this hub's day-close offset in CloseSpread
	daysRead  int           // Day records the passes decoded (tests)
	household string
	install   string
	now       func() time.Time
	rules     string
	step      float64
	maxBytes  int

	made     *prometheus.CounterVec
	withheld *prometheus.CounterVec
	skipped  prometheus.Counter
	folded   prometheus.Counter
	deferred prometheus.Counter
	set      *metricset.Set
}

// NewBuilder returns a Builder over st.
// DefaultOptions are the documented defaults: the one place they are written
// (internal/config's sync.* defaults are these).
func DefaultOptions() Options {
	return Options{CloseGrace: 2 * time.Hour, CloseSpread: 4 * time.Hour, TagScoreStep: 0.1}
}

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
	key := opts.Key
	if key == nil {
		key = st.Secret()
	}
	p := privacy.NewPseudonymizer(key)
	if opts.ConsentNow == nil {
		c := opts.Consent
		opts.ConsentNow = func() privacy.Consent { return c }
	}
	d := DefaultOptions()
	if opts.CloseGrace <= 0 {
		opts.CloseGrace = d.CloseGrace
	}
	if opts.Simulated == nil {
		opts.Simulated = func(string) bool { return false }
	}
	if opts.TagScoreStep <= 0 {
		opts.TagScoreStep = d.TagScoreStep
	}
	b := &Builder{st: st, loc: opts.Location, consent: opts.ConsentNow, pseudo: p, simulated: opts.Simulated, grace: opts.CloseGrace,
		household: p.ID("household", st.InstallID()), install: st.InstallID(), now: opts.Now, rules: opts.RulesVersion,
		step: opts.TagScoreStep, maxBytes: opts.MaxPendingBytes,
		made: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_summaries_total",
			Help: "Summaries put in the outbox, by type (device_day, tag, profile, health)."}, []string{"type"}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_withheld_total",
			Help: "Summaries not sent because the household has not consented to their category, by type."}, []string{"type"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_sync_tag_rescores_skipped_total",
			Help: "Tag changes not sent: the score moved less than sync.tag_score_step from the score last sent."}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_sync_folded_total",
			Help: "Queued tag score changes folded into the tag's later change because the outbox was over sync.outbox_max_bytes."}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_sync_deferred_total",
			Help: "Builder steps that made nothing because the outbox was over sync.outbox_max_bytes (the days wait in the rollups)."}),
	}
	if opts.CloseSpread > 0 {
		b.offset = closeOffset(b.household, opts.CloseSpread)
	}
	for _, t := range []string{TypeDeviceDay, TypeTag, TypeProfile, TypeHealth} {
		b.made.WithLabelValues(t)
		b.withheld.WithLabelValues(t)
	}
	b.set = metricset.Must(opts.Registerer, b.made, b.withheld, b.skipped, b.folded, b.deferred)
	return b
}

// Unregister removes the builder's metrics.
func (b *Builder) Unregister() { b.set.Unregister() }

// Household is the household's pseudonym: the anonymousId of every message.
func (b *Builder) Household() string { return b.household }

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

// trusted reports whether the hub clock reads a plausible time (a Pi without an RTC
// reads 1970 until NTP has run).
func trusted(now time.Time) bool { return now.Year() >= 2020 }

// closeOffset is a household's day-close offset in [0, spread): a hash of its
// pseudonym, so uniform over a fleet and the same at every start.
func closeOffset(household string, spread time.Duration) time.Duration {
	h := sha256.Sum256([]byte("hearth day close\x00" + household))
	return time.Duration(binary.BigEndian.Uint64(h[:8]) % uint64(spread))
}

// CloseOffset is this hub's day-close offset (in [0, sync.day_close_spread)): its
// days close CloseGrace plus this past their end.
func (b *Builder) CloseOffset() time.Duration { return b.offset }

// Step summarises every local day that closed since the last step and every new tag
// change, and a health message once per local day. A device's day closes once that
// device's clock is CloseGrace (plus the hub's CloseSpread offset) past its end, or —
// for a device quiet for CloseGrace — once the hub's clock is. It returns the number of messages put in the outbox.
func (b *Builder) Step() (int, error) {
	n := 0
	now := b.now()
	b.cur = b.consent()
	err := b.st.Update(func(tx *store.Tx) error {
		if err := takeLegacy(tx); err != nil {
			return err
		}
		if b.maxBytes > 0 {
			full, err := b.relieve(tx)
			if err != nil || full {
				return err
			}
		}
		// A device's day is closed once that device's own clock has passed it: devices
		// report at different paces (a washer may upload a cycle an hour late).
		devClock, err := tx.DataClocks()
		if err != nil {
			return err
		}
		// Household-level messages leave without consent only from a hub whose every
		// device is simulated — and a hub with no device at all is not such a hub.
		known := b.st.Devices()
		allSim := len(known) > 0
		for _, d := range known {
			allSim = allSim && b.simulated(d.ID)
			// A device that has sent nothing for the grace (by the hub's clock) has
			// its days closed by the hub's clock: it may never speak again.
			if c, ok := devClock[d.ID]; ok && trusted(now) && !d.LastSeen.IsZero() && now.Sub(d.LastSeen) >= b.grace && now.After(c) {
				devClock[d.ID] = now
			}
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
		// ... and up to the newest date any device's clock has closed: the days of a
		// date on or after every device's "today" below are skipped unread (each
		// pass would decode every open day of every device, 15 a second at 30
		// devices and a pass every 2s).
		to := ""
		for _, dev := range devs {
			if last := b.lastClosed(devClock[dev]); last > to {
				to = last
			}
		}
		byDev := map[[2]string][]store.Day{}
		if err := tx.Days(from, to, func(d *store.Day) error {
			b.daysRead++
			byDev[[2]string{d.Date, d.Device}] = append(byDev[[2]string{d.Date, d.Device}], *d)
			return nil
		}); err != nil {
			return err
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
			today := b.today(devClock[dev])
			if date >= today || date <= numDate(tx.Cursor(DaysCursor+"\x00"+dev)) {
				continue // not closed yet, or already sent
			}
			newest[dev] = max(newest[dev], date)
			if !b.allows(privacy.Usage, b.simulated(dev)) {
				b.withheld.WithLabelValues(TypeDeviceDay).Inc()
				continue
			}
			dd := b.deviceDay(date, dev, byDev[k])
			if err := b.enqueue(tx, dd.ID, TypeDeviceDay, privacy.Usage, b.simulated(dev), "", false, message.DayEnd(date, b.loc), dd); err != nil {
				return err
			}
			b.made.WithLabelValues(TypeDeviceDay).Inc()
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
		k, err := b.tags(tx, allSim) // tags.go
		n += k
		return err
	})
	return n, err
}

// today is the first date a device whose clock reads clock has not closed: its
// days close once its clock is CloseGrace (plus the hub's offset) past their end.
func (b *Builder) today(clock time.Time) string {
	return clock.Add(-b.grace - b.offset).In(b.loc).Format(time.DateOnly)
}

// lastClosed is the newest date a device whose clock reads clock has closed ("" for
// none: a zero clock).
func (b *Builder) lastClosed(clock time.Time) string {
	d, err := time.Parse(time.DateOnly, b.today(clock))
	if err != nil || clock.IsZero() {
		return ""
	}
	return d.AddDate(0, 0, -1).Format(time.DateOnly)
}

func (b *Builder) deviceDay(date, dev string, days []store.Day) DeviceDay {
	out := DeviceDay{Type: TypeDeviceDay, Household: b.household, Device: b.pseudo.ID("device", dev), Date: date,
		Signals: map[device.Signal]*Signal{}, Rules: b.rules}
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

// allows reports whether a message of category cat may be made now: of the simulated
// household (sim) unless the household decided otherwise (privacy.Consent).
func (b *Builder) allows(cat string, sim bool) bool {
	if sim {
		return b.cur.AllowsSimulated(cat)
	}
	return b.cur.Allows(cat)
}

// enqueue puts one message in the outbox queue: its JSON body and what delivery needs
// to know without decoding it (its id, the consent category it needs, when what it
// summarises happened).
func (b *Builder) enqueue(tx *store.Tx, id, typ, category string, simulated bool, key string, fold bool, at time.Time, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("summary: encode %s: %w", typ, err)
	}
	return tx.Enqueue(&store.Message{Enqueued: b.now(), Type: typ, ID: id, Category: category, Simulated: simulated,
		Key: key, Fold: fold, At: at.UTC(), Body: body})
}
