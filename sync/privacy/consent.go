package privacy

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
)

// Consent categories. Every queued message carries the one it needs (store.Message's
// Category); a transport whose endpoint is outside the household's region needs
// CrossBorder as well.
const (
	Usage       = "usage"        // daily appliance summaries, the hub's health
	Tags        = "tags"         // learned habits: tag changes and the profile
	Sensitive   = "sensitive"    // whereabouts (presence.away) and any tag marked sensitive: never computed without it
	CrossBorder = "cross_border" // sending through an endpoint outside the household's region
	// Erasure is the category of an erasure request: it needs no consent (it asks the
	// receiver to delete what it holds) and is sent whatever else was withdrawn.
	Erasure = "erasure"
)

// Categories are the categories a household decides, in the order they are shown.
var Categories = []string{Usage, Tags, Sensitive, CrossBorder}

// Known reports whether c is one of Categories.
func Known(c string) bool { return slices.Contains(Categories, c) }

// Consent is what the household agreed may leave the home, at one moment.
type Consent struct {
	Usage, Tags, Sensitive, CrossBorder bool
	// CrossBorderTransport: the configured transport's endpoint is outside the
	// household's region (privacy.region, privacy.endpoint_region): every message
	// then needs CrossBorder too.
	CrossBorderTransport bool
	// Recorded holds the categories whose state the household recorded (the CLI, the
	// admin API, the page) rather than took from the configuration. The agent's
	// simulated household leaves without consent only in categories nobody decided.
	Recorded Set
}

// Set is a set of consent categories.
type Set uint8

func bit(cat string) Set {
	for i, c := range Categories {
		if c == cat {
			return 1 << i
		}
	}
	return 0
}

// Has reports whether cat is in s.
func (s Set) Has(cat string) bool { b := bit(cat); return b != 0 && s&b != 0 }

// With returns s with cat.
func (s Set) With(cat string) Set { return s | bit(cat) }

// Granted reports whether the household agreed to category c (without the
// transport's cross-border condition: what may be computed at home).
func (c Consent) Granted(cat string) bool {
	switch cat {
	case Usage:
		return c.Usage
	case Tags:
		return c.Tags
	case Sensitive:
		return c.Sensitive
	case CrossBorder:
		return c.CrossBorder
	case Erasure:
		return true
	}
	return false
}

// Allows reports whether a message of category cat may leave through the configured
// transport now.
func (c Consent) Allows(cat string) bool {
	if cat == Erasure {
		return true
	}
	if cat == Sensitive && !c.Tags {
		return false // a sensitive tag is a tag: it needs both
	}
	return c.Granted(cat) && (!c.CrossBorderTransport || c.CrossBorder)
}

// AllowsSimulated reports whether a message of the agent's simulated household
// (which carries no personal data) may leave in category cat: yes unless the
// household recorded a decision that refuses it.
func (c Consent) AllowsSimulated(cat string) bool {
	if c.Allows(cat) {
		return true
	}
	if c.Recorded.Has(cat) && !c.Granted(cat) || cat == Sensitive && c.Recorded.Has(Tags) && !c.Tags {
		return false
	}
	return !(c.CrossBorderTransport && c.Recorded.Has(CrossBorder) && !c.CrossBorder)
}

// Permits reports whether queued message m may leave now.
func (c Consent) Permits(m *store.Message) bool {
	if m.Simulated {
		return c.AllowsSimulated(m.Category)
	}
	return c.Allows(m.Category)
}

func (c *Consent) set(cat string, v bool) {
	switch cat {
	case Usage:
		c.Usage = v
	case Tags:
		c.Tags = v
	case Sensitive:
		c.Sensitive = v
	case CrossBorder:
		c.CrossBorder = v
	}
}

// Map is the consent as category → granted.
func (c Consent) Map() map[string]bool {
	m := map[string]bool{}
	for _, cat := range Categories {
		m[cat] = c.Granted(cat)
	}
	return m
}

// Live holds the consent in force, safe for concurrent use: the summary builder,
// delivery and the tagging engine read it at every step.
type Live struct{ v atomic.Pointer[Consent] }

// NewLive returns a Live holding c.
func NewLive(c Consent) *Live {
	l := &Live{}
	l.v.Store(&c)
	return l
}

// Now returns the consent in force.
func (l *Live) Now() Consent { return *l.v.Load() }

func (l *Live) store(c Consent) { l.v.Store(&c) }

// Change is one decision of the household about one category.
type Change struct {
	Category string    `json:"category"`
	Granted  bool      `json:"granted"`
	By       string    `json:"by"`  // who: the OS user of the CLI, "household page", …
	Via      string    `json:"via"` // through what: cli, admin_api, page
	At       time.Time `json:"at"`
	Purged   int       `json:"purged"` // queued and batched messages taken out by a withdrawal
}

// Ledger is the household's consent: the configuration's initial state, overridden
// category by category by what the household recorded in the store (the record wins
// over the configuration, whatever the file says later). Changes take effect at once:
// a withdrawal purges every queued and batched message no longer allowed, in the
// transaction that records it with its audit entry.
type Ledger struct {
	st   *store.Store
	live *Live
	o    LedgerOptions
}

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	// Initial is the configuration's consent (and whether the transport crosses a
	// border).
	Initial Consent
	// BatchID names a batch from its messages (sync/outbox's rule), for the batches a
	// purge leaves with fewer messages: a batch's id always says what it holds.
	BatchID func(msgs []store.Message) string
	// Exclusive runs fn while no delivery attempt is in flight (sync/outbox's
	// Delivery.Exclusive), so that nothing of a withdrawn category is on the wire once
	// Set returns. Nil: fn runs at once.
	Exclusive func(fn func() error) error
	Now       func() time.Time
}

// NewLedger loads the household's recorded decisions from st over o.Initial.
func NewLedger(st *store.Store, o LedgerOptions) (*Ledger, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Exclusive == nil {
		o.Exclusive = func(fn func() error) error { return fn() }
	}
	c := o.Initial
	c.Recorded = 0
	err := st.View(func(tx *store.Tx) error {
		recs, err := tx.ConsentRecords()
		for cat, r := range recs {
			if Known(cat) {
				c.set(cat, r.Granted)
				c.Recorded = c.Recorded.With(cat)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("privacy: consent: %w", err)
	}
	return &Ledger{st: st, live: NewLive(c), o: o}, nil
}

// Live is the consent in force, for the stages that read it.
func (l *Ledger) Live() *Live { return l.live }

// Now returns the consent in force.
func (l *Ledger) Now() Consent { return l.live.Now() }

// Records returns the recorded decisions, by category.
func (l *Ledger) Records() (map[string]store.ConsentRecord, error) {
	var out map[string]store.ConsentRecord
	err := l.st.View(func(tx *store.Tx) error {
		var err error
		out, err = tx.ConsentRecords()
		return err
	})
	return out, err
}

// Set records the household's decision on category cat, by whom and through what,
// purges what it no longer allows from the outbox (queue and formed batches) and
// audits the change, in one transaction, while no delivery attempt is in flight.
func (l *Ledger) Set(cat string, granted bool, by, via string) (Change, error) {
	if !Known(cat) {
		return Change{}, fmt.Errorf("privacy: unknown consent category %q (one of %v)", cat, Categories)
	}
	ch := Change{Category: cat, Granted: granted, By: by, Via: via, At: l.o.Now().UTC()}
	err := l.o.Exclusive(func() error {
		old := l.live.Now()
		next := old
		next.Recorded = old.Recorded.With(cat)
		next.set(cat, granted)
		// A withdrawal is in force before it is persisted (a send that starts now sees
		// it); a grant only once it is.
		if !granted {
			l.live.store(next)
		}
		err := l.st.Update(func(tx *store.Tx) error {
			if err := tx.PutConsent(store.ConsentRecord{Category: cat, Granted: granted, By: by, Via: via, At: ch.At}); err != nil {
				return err
			}
			n, err := tx.PurgeOutbox(func(m *store.Message) bool { return next.Permits(m) }, l.o.BatchID)
			if err != nil {
				return err
			}
			ch.Purged = n
			return tx.AppendPrivacyAudit(&store.AuditEntry{At: ch.At, Kind: store.AuditConsent, Categories: []string{cat},
				Messages: n, Detail: map[string]any{"category": cat, "granted": granted, "by": by, "via": via, "purged": n}}, nil)
		})
		if err != nil {
			l.live.store(old)
			return err
		}
		l.live.store(next)
		return nil
	})
	if err != nil {
		return Change{}, fmt.Errorf("privacy: consent %s: %w", cat, err)
	}
	return ch, nil
}
