// Package outbox delivers what sync/summary queued in the store, through a
// transport, with one discipline for every transport:
//
//   - a batch is formed once, from the oldest queued messages, within the transport's
//     limits, and stored (its id, its messages, its size, its attempts and when it may
//     next be tried): every retry sends the same id and the same messages; messages
//     queued later go to later batches;
//   - batches go in order; a batch is deleted only after its receiver acknowledged it,
//     in the same transaction that records the delivery;
//   - answers by class (sync/transport): Retry → exponential backoff with full jitter,
//     never before the receiver's Retry-After; Reject → the dead letters (counted,
//     shown, never blocking what follows); Auth → delivery pauses, says so, and tries
//     again every AuthRetry;
//   - after a long outage the hub retries once every window at its own phase, the
//     window growing with the outage (up to ResumeSpread), so that a fleet whose
//     receiver comes back arrives spread over a time of the outage's order, while a
//     short outage ends soon;
//   - a bandwidth cap per hour (MaxBytesPerHour);
//   - consent is checked again before every attempt: a message whose category the
//     household no longer allows is taken out and never sent.
//
// Delivery is a component: Run(ctx) until cancelled, Health() for a snapshot.
package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/transport"
)

// Options configure delivery. Zero fields take the defaults shown.
type Options struct {
	Household string          // the household's pseudonym (summary.Builder.Household)
	Consent   privacy.Consent // checked again before every attempt
	// ConsentNow, when set, is the consent in force (privacy.Live.Now), read before
	// every attempt instead of Consent: the household's changes take effect at once.
	ConsentNow func() privacy.Consent
	// KeepPayloads keeps the exact payload of every acknowledged batch with its
	// audit entry (privacy.payload_keep > 0; `hearth audit --show`).
	KeepPayloads bool
	// BatchAge: a batch smaller than the limits is formed once its oldest message is
	// this old (default 10s). BatchCount and BatchBytes lower the transport's limits.
	BatchAge   time.Duration
	BatchCount int
	BatchBytes int
	// InitialBackoff and MaxBackoff bound the exponential backoff (defaults 1s, 5m);
	// each wait is drawn uniformly from zero to the bound (full jitter).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// LongOutage: once deliveries have failed for this long (default 10m), the hub
	// retries once every resume window, at its own phase in it. The window follows
	// the outage: LongOutage·2^(k+φ), the smallest such not shorter than twice the
	// outage so far (φ in [0,1) fixed by the household's pseudonym, k ≥ 0), at most
	// ResumeSpread (default 24h). A fleet whose receiver was down for a day comes
	// back over a day; after an outage of half an hour, within two hours
	// (docs/sync.md sizes it).
	LongOutage   time.Duration
	ResumeSpread time.Duration
	// AuthRetry: how often a delivery paused by 401/403 tries again (default 10m).
	AuthRetry time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (default 6h).
	MaxRetryAfter time.Duration
	// MaxBytesPerHour caps the bytes put on the wire per hour (0: no cap). A batch
	// bigger than the cap is sent alone at the start of an hour.
	MaxBytesPerHour int64
	// DeadLetterKeep: the most dead letters kept; older ones are deleted, counted and
	// audited (default 1000).
	DeadLetterKeep int
	Now            func() time.Time // default time.Now
	Rand           func() float64   // in [0,1), for jitter (default math/rand/v2)
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Health is a snapshot of delivery.
type Health struct {
	Transport      string        `json:"transport"`
	LastSuccess    time.Time     `json:"last_success,omitzero"`
	LastError      string        `json:"last_error,omitempty"`
	LastErrorClass string        `json:"last_error_class,omitempty"` // retry, rejected, auth
	LastErrorAt    time.Time     `json:"last_error_at,omitzero"`
	Errors         uint64        `json:"errors"`  // failed attempts since start
	Backoff        time.Duration `json:"backoff"` // until the next attempt (0: none waiting)
	NextAttempt    time.Time     `json:"next_attempt,omitzero"`
	Paused         string        `json:"paused,omitempty"` // why delivery is paused ("": it is not)
	OutageSince    time.Time     `json:"outage_since,omitzero"`
	Delivered      int64         `json:"delivered"`       // messages acknowledged since start
	DeliveredBytes int64         `json:"delivered_bytes"` // bytes on the wire of the acknowledged batches since start
	// What waits, as of the last step.
	Pending store.OutboxStats `json:"pending"`
}

// Delivery delivers the outbox through one transport.
type Delivery struct {
	st   *store.Store
	tr   transport.Transport
	o    Options
	lim  transport.Limits
	log  *slog.Logger
	wake chan struct{}

	mu sync.Mutex
	h  Health
	// sendMu is held by a whole step (forming, sending, recording the answers), and
	// by Exclusive: a consent change waits for the batch on the wire.
	sendMu sync.Mutex

	delivered *prometheus.CounterVec
	errs      *prometheus.CounterVec
	dead      *prometheus.CounterVec
	withheld  prometheus.Counter
	set       *metricset.Set
}

// New returns a Delivery from st through tr.
// DefaultOptions are the documented defaults: the one place they are written
// (internal/config's sync.* defaults are these).
func DefaultOptions() Options {
	return Options{BatchAge: 10 * time.Second, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute,
		LongOutage: 10 * time.Minute, ResumeSpread: 24 * time.Hour, AuthRetry: 10 * time.Minute, MaxRetryAfter: 6 * time.Hour,
		DeadLetterKeep: 1000}
}

func New(st *store.Store, tr transport.Transport, o *Options) *Delivery {
	var opts Options
	if o != nil {
		opts = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	dflt := DefaultOptions()
	def(&opts.BatchAge, dflt.BatchAge)
	def(&opts.InitialBackoff, dflt.InitialBackoff)
	def(&opts.MaxBackoff, dflt.MaxBackoff)
	def(&opts.LongOutage, dflt.LongOutage)
	def(&opts.ResumeSpread, dflt.ResumeSpread)
	def(&opts.AuthRetry, dflt.AuthRetry)
	def(&opts.MaxRetryAfter, dflt.MaxRetryAfter)
	if opts.DeadLetterKeep <= 0 {
		opts.DeadLetterKeep = dflt.DeadLetterKeep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	lim := tr.Limits()
	if opts.BatchCount > 0 && opts.BatchCount < lim.MaxMessages {
		lim.MaxMessages = opts.BatchCount
	}
	if opts.BatchBytes > 0 && opts.BatchBytes < lim.MaxBatchBytes {
		lim.MaxBatchBytes = opts.BatchBytes
	}
	lim.Window = max(lim.Window, 1)
	d := &Delivery{st: st, tr: tr, o: opts, lim: lim, log: opts.Logger.With("component", "sync", "transport", tr.Name()),
		wake: make(chan struct{}, 1), h: Health{Transport: tr.Name()},
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_delivered_total",
			Help: "Acknowledged by the receiver: messages, batches and bytes on the wire."}, []string{"unit"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_delivery_errors_total",
			Help: "Failed delivery attempts, by class (retry, rejected, auth)."}, []string{"class"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_sync_dead_lettered_total",
			Help: "Batches moved to the dead letters, by reason (rejected: the receiver refused them; too_large: over its limits; unencodable; evicted: the oldest dead letters deleted beyond the keep)."},
			[]string{"reason"}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_sync_withheld_at_send_total",
			Help: "Queued messages taken out before sending because the household no longer consents to their category."}),
	}
	for _, u := range []string{"messages", "batches", "bytes"} {
		d.delivered.WithLabelValues(u)
	}
	for _, c := range []string{"retry", "rejected", "auth"} {
		d.errs.WithLabelValues(c)
	}
	for _, r := range []string{"rejected", "too_large", "unencodable", "evicted"} {
		d.dead.WithLabelValues(r)
	}
	gauge := func(name, help string, f func(h Health) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(d.Health()) })
	}
	d.set = metricset.Must(opts.Registerer, d.delivered, d.errs, d.dead, d.withheld,
		gauge("hearth_sync_pending_batches", "Batches formed and waiting for their acknowledgement.", func(h Health) float64 { return float64(h.Pending.Batches) }),
		gauge("hearth_sync_pending_messages", "Messages waiting to go upstream (queued and in batches).", func(h Health) float64 {
			return float64(h.Pending.Queued + h.Pending.BatchMessages)
		}),
		gauge("hearth_sync_pending_bytes", "Bytes waiting to go upstream (queued message bodies and formed batches on the wire).", func(h Health) float64 {
			return float64(h.Pending.QueuedBytes + h.Pending.BatchBytes)
		}),
		gauge("hearth_sync_dead_letters", "Batches in the dead letters.", func(h Health) float64 { return float64(h.Pending.DeadLetters) }),
		gauge("hearth_sync_oldest_unsent_seconds", "Age of the oldest message not yet acknowledged (0: none).", func(h Health) float64 {
			if h.Pending.Oldest.IsZero() {
				return 0
			}
			return d.o.Now().Sub(h.Pending.Oldest).Seconds()
		}),
		gauge("hearth_sync_last_success_timestamp_seconds", "Unix time of the last acknowledged delivery (0: none yet).", func(h Health) float64 {
			if h.LastSuccess.IsZero() {
				return 0
			}
			return float64(h.LastSuccess.UnixNano()) / 1e9
		}),
		gauge("hearth_sync_backoff_seconds", "Time until the next attempt of a batch that failed (0: none waiting).", func(h Health) float64 { return h.Backoff.Seconds() }),
		gauge("hearth_sync_paused", "1 while delivery is paused because the receiver refused the credentials (401/403).", func(h Health) float64 {
			if h.Paused != "" {
				return 1
			}
			return 0
		}),
	)
	_ = st.View(func(tx *store.Tx) error {
		s, err := tx.DeliveryState()
		d.h.LastSuccess, d.h.OutageSince = s.LastSuccess, s.OutageSince
		d.h.Pending, _ = tx.OutboxStats()
		return err
	})
	return d
}

// Unregister removes delivery's metrics.
func (d *Delivery) Unregister() { d.set.Unregister() }

// Health returns a snapshot of delivery.
func (d *Delivery) Health() Health {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.h
	if !h.NextAttempt.IsZero() {
		h.Backoff = max(0, h.NextAttempt.Sub(d.o.Now()))
	}
	return h
}

// Delivered returns the bytes on the wire and the messages acknowledged since start.
func (d *Delivery) Delivered() (bytes, messages int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.h.DeliveredBytes, d.h.Delivered
}

// Notify tells delivery that messages were queued.
func (d *Delivery) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is cancelled. A failure of the store is logged, counted
// and retried after a second; a failed delivery is in Health, not an error.
func (d *Delivery) Run(ctx context.Context) error { return d.RunReporting(ctx, nil) }

// RunReporting is Run that also tells report about each step that tried something:
// nil after a step whose attempts all succeeded, the error otherwise (a supervisor's
// health: cmd/hearth shows delivery's stage failing while the receiver is away).
func (d *Delivery) RunReporting(ctx context.Context, report func(error)) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
		before := d.Health()
		wake, err := d.Step(ctx)
		wait := time.Minute // idle: new messages Notify
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.log.Error("delivery step failed", "err", err)
			d.fail(err.Error(), "store")
			wait = time.Second
		} else if !wake.IsZero() {
			wait = min(wait, max(wake.Sub(d.o.Now()), 10*time.Millisecond))
		}
		if report != nil {
			after := d.Health()
			switch {
			case err != nil:
				report(err)
			case after.Errors > before.Errors:
				report(errors.New(after.LastError))
			case after.Delivered > before.Delivered:
				report(nil)
			}
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// Flush sends everything that can be sent now, forming batches whatever their age,
// until nothing more can go (empty, waiting for a retry, paused, or capped).
func (d *Delivery) Flush(ctx context.Context) error {
	for i := 0; i < 10000; i++ {
		n, _, err := d.step(ctx, true)
		if err != nil || n == 0 {
			return err
		}
	}
	return nil
}

// Step forms the batches that are due and sends those whose time has come. It
// returns when it next has something to do (zero: only when messages are queued).
func (d *Delivery) Step(ctx context.Context) (time.Time, error) {
	_, wake, err := d.step(ctx, false)
	return wake, err
}

func (d *Delivery) fail(msg, class string) {
	d.mu.Lock()
	d.h.LastError, d.h.LastErrorClass, d.h.LastErrorAt = msg, class, d.o.Now()
	d.h.Errors++
	d.mu.Unlock()
}

// consent is the consent in force.
func (d *Delivery) consent() privacy.Consent {
	if d.o.ConsentNow != nil {
		return d.o.ConsentNow()
	}
	return d.o.Consent
}

// allowed reports whether m may leave now.
func (d *Delivery) allowed(m *store.Message) bool { return d.consent().Permits(m) }

// Exclusive runs fn while no delivery step runs: no batch is being formed or is on
// the wire (privacy.Ledger changes consent under it, so that nothing of a withdrawn
// category leaves once the change returned; it waits for a send in flight, at most
// the transport's timeout).
func (d *Delivery) Exclusive(fn func() error) error {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	return fn()
}

// BatchID names a batch of the household by what it holds: the same messages make
// the same id.
func BatchID(household string, msgs []store.Message) string { return batchID(household, msgs) }

// batchID names a batch by what it holds: the same messages make the same id.
func batchID(household string, msgs []store.Message) string {
	h := sha256.New()
	h.Write([]byte(household))
	for i := range msgs {
		h.Write([]byte{0})
		h.Write([]byte(msgs[i].ID))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// step is Step; force forms batches whatever their age. n is the number of
// messages acknowledged.
func (d *Delivery) step(ctx context.Context, force bool) (n int, wake time.Time, err error) {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	now := d.o.Now()
	var due []store.Batch
	var state store.DeliveryState
	// 1. Form batches (up to the window) and pick those due, in one transaction.
	err = d.st.Update(func(tx *store.Tx) error {
		var err error
		if state, err = tx.DeliveryState(); err != nil {
			return err
		}
		var batches []store.Batch
		if err := tx.Batches(func(b store.Batch) error { batches = append(batches, b); return nil }); err != nil {
			return err
		}
		for len(batches) < d.lim.Window {
			b, w, err := d.form(tx, now, force)
			if err != nil {
				return err
			}
			if b == nil {
				if !w.IsZero() && (wake.IsZero() || w.Before(wake)) {
					wake = w
				}
				break
			}
			batches = append(batches, *b)
		}
		// Consent again, before any attempt.
		for i := 0; i < len(batches); i++ {
			kept, gone := batches[i].Messages[:0:0], 0
			for _, m := range batches[i].Messages {
				if d.allowed(&m) {
					kept = append(kept, m)
				} else {
					gone++
				}
			}
			if gone == 0 {
				continue
			}
			d.withheld.Add(float64(gone))
			if err := tx.Audit("sync_withheld_at_send", map[string]any{"batch": batches[i].ID, "messages": gone}); err != nil {
				return err
			}
			if err := tx.AppendPrivacyAudit(&store.AuditEntry{At: now.UTC(), Kind: store.AuditWithheld, Transport: d.tr.Name(),
				Batch: batches[i].ID, Messages: gone}, nil); err != nil {
				return err
			}
			if len(kept) == 0 {
				if err := tx.DeleteBatch(batches[i].Seq); err != nil {
					return err
				}
				batches = append(batches[:i], batches[i+1:]...)
				i--
				continue
			}
			batches[i].Messages = kept
			batches[i].ID = batchID(d.o.Household, kept)
			if err := tx.PutBatch(&batches[i]); err != nil {
				return err
			}
		}
		// Due: the batches in order while their time has come (a batch waiting for
		// its retry holds back those after it: order per device is kept).
		for _, b := range batches {
			if b.Next.After(now) {
				if wake.IsZero() || b.Next.Before(wake) {
					wake = b.Next
				}
				break
			}
			due = append(due, b)
		}
		// The bandwidth cap.
		if cap := d.o.MaxBytesPerHour; cap > 0 && len(due) > 0 {
			if now.Sub(state.HourStart) >= time.Hour || now.Before(state.HourStart) {
				state.HourStart, state.HourBytes = now, 0
			}
			used := state.HourBytes
			for i, b := range due {
				if used > 0 && used+int64(b.Bytes) > cap {
					due = due[:i]
					wake = state.HourStart.Add(time.Hour)
					break
				}
				used += int64(b.Bytes)
			}
		}
		return tx.SetDeliveryState(state)
	})
	if err != nil || len(due) == 0 {
		d.snapshot()
		return 0, wake, err
	}
	// 2. Send, outside any transaction.
	tbs := make([]transport.Batch, len(due))
	for i, b := range due {
		tbs[i] = transport.Batch{ID: b.ID, Household: d.o.Household, Messages: b.Messages}
	}
	errs, wire := d.tr.Send(ctx, tbs)
	// 3. Record every answer in one transaction: the acknowledged batches deleted with
	// the state that says so.
	now = d.o.Now()
	var paused string
	var next time.Time
	err = d.st.Update(func(tx *store.Tx) error {
		state, err := tx.DeliveryState()
		if err != nil {
			return err
		}
		ok := false
		for i := range due {
			b := &due[i]
			e := errs[i]
			if e == nil {
				if err := tx.DeleteBatch(b.Seq); err != nil {
					return err
				}
				if err := d.audit(tx, b, &tbs[i], now); err != nil {
					return err
				}
				n += len(b.Messages)
				state.Delivered += uint64(len(b.Messages))
				ok = true
				continue
			}
			class, retryAfter := transport.ClassOf(e)
			switch class {
			case transport.Reject:
				if err := d.deadLetter(tx, b, "rejected", e.Error(), now); err != nil {
					return err
				}
			case transport.Auth:
				paused = e.Error()
				b.Next = now.Add(d.o.AuthRetry)
				b.LastErr = e.Error()
				if err := tx.PutBatch(b); err != nil {
					return err
				}
			default:
				if state.OutageSince.IsZero() {
					state.OutageSince = now
				}
				b.Attempts++
				b.Next = now.Add(d.retryWait(b.Attempts, retryAfter, now.Sub(state.OutageSince), now))
				b.LastErr = e.Error()
				if err := tx.PutBatch(b); err != nil {
					return err
				}
			}
			if next.IsZero() || (!b.Next.IsZero() && b.Next.Before(next)) {
				next = b.Next
			}
		}
		if ok {
			state.LastSuccess = now
			if next.IsZero() {
				state.OutageSince = time.Time{}
			}
		}
		state.HourBytes += int64(wire)
		return tx.SetDeliveryState(state)
	})
	if err != nil {
		return n, wake, err
	}
	d.delivered.WithLabelValues("bytes").Add(float64(wire))
	acked, ackedBytes := 0, 0
	for i, e := range errs {
		if e == nil {
			ackedBytes += due[i].Bytes
		}
	}
	for i, e := range errs {
		if e == nil {
			acked++
			continue
		}
		class, _ := transport.ClassOf(e)
		d.errs.WithLabelValues(class.String()).Inc()
		d.fail(e.Error(), class.String())
		d.log.Warn("delivery failed", "batch", due[i].ID, "messages", len(due[i].Messages), "class", class.String(),
			"attempts", due[i].Attempts, "retry_at", due[i].Next, "err", e)
	}
	d.delivered.WithLabelValues("messages").Add(float64(n))
	d.delivered.WithLabelValues("batches").Add(float64(acked))
	d.mu.Lock()
	if acked > 0 {
		d.h.LastSuccess = now
	}
	d.h.Delivered += int64(n)
	d.h.DeliveredBytes += int64(ackedBytes)
	d.h.Paused = paused
	d.h.NextAttempt = next
	d.mu.Unlock()
	d.snapshot()
	if !next.IsZero() {
		return n, next, nil
	}
	return n, now, nil // more may be ready at once
}

// audit records an acknowledged batch in the audit of what left the home, in the
// transaction that deletes it: when, through what, to where, its categories, its
// messages and bytes, and the payload as sent when KeepPayloads.
func (d *Delivery) audit(tx *store.Tx, b *store.Batch, sent *transport.Batch, now time.Time) error {
	e := &store.AuditEntry{At: now.UTC(), Kind: store.AuditDelivery, Transport: d.tr.Name(), Batch: b.ID,
		Messages: len(b.Messages), Bytes: sent.Wire, MessageIDs: make([]string, len(b.Messages))}
	if ep, ok := d.tr.(interface{ Endpoint() string }); ok {
		e.Endpoint = ep.Endpoint()
	}
	seen := map[string]bool{}
	for i, m := range b.Messages {
		e.MessageIDs[i] = m.ID
		if !seen[m.Category] {
			seen[m.Category] = true
			e.Categories = append(e.Categories, m.Category)
		}
	}
	var payload []byte
	if d.o.KeepPayloads && sent.Payload != nil {
		payload = sent.Payload
	}
	return tx.AppendPrivacyAudit(e, payload)
}

// snapshot refreshes what Health says waits.
func (d *Delivery) snapshot() {
	var p store.OutboxStats
	var s store.DeliveryState
	_ = d.st.View(func(tx *store.Tx) error {
		p, _ = tx.OutboxStats()
		s, _ = tx.DeliveryState()
		return nil
	})
	d.mu.Lock()
	d.h.Pending = p
	d.h.OutageSince = s.OutageSince
	if p.Batches == 0 {
		d.h.NextAttempt = time.Time{}
	}
	d.mu.Unlock()
}

// form makes the next batch from the queue: the oldest messages within the limits,
// if the batch is full, its oldest message BatchAge old, or force. A message that can
// never be sent (bigger than the receiver takes, or that cannot be encoded) goes to
// the dead letters alone. It returns nil and when to look again if no batch is due.
func (d *Delivery) form(tx *store.Tx, now time.Time, force bool) (*store.Batch, time.Time, error) {
	var msgs []store.Message
	size, full := 0, false
	type aside struct {
		m      store.Message
		reason string
		err    error
	}
	var withheld []store.Message
	var dead []aside
	// The queue is read first and changed after: deleting under a bbolt cursor may
	// make it skip the next key, which would put a later message in an earlier batch.
	err := tx.Queued(0, func(m store.Message) error {
		if !d.allowed(&m) {
			withheld = append(withheld, m)
			return nil
		}
		n, err := d.tr.Size(m)
		switch {
		case err != nil:
			dead = append(dead, aside{m, "unencodable", err})
			return nil
		case n > d.lim.MaxMessageBytes || n > d.lim.MaxBatchBytes:
			dead = append(dead, aside{m, "too_large", fmt.Errorf("message of %d bytes: %w (at most %d)", n, transport.ErrTooLarge, d.lim.MaxMessageBytes)})
			return nil
		}
		if len(msgs) >= d.lim.MaxMessages || size+n > d.lim.MaxBatchBytes {
			full = true
			return store.ErrStopRange
		}
		msgs = append(msgs, m)
		size += n
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, m := range withheld {
		d.withheld.Inc()
		if err := tx.Dequeue(m.Seq); err != nil {
			return nil, time.Time{}, err
		}
	}
	for _, a := range dead {
		b := &store.Batch{ID: batchID(d.o.Household, []store.Message{a.m}), Created: now, Messages: []store.Message{a.m}}
		if err := d.deadLetter(tx, b, a.reason, a.err.Error(), now); err != nil {
			return nil, time.Time{}, err
		}
		if err := tx.Dequeue(a.m.Seq); err != nil {
			return nil, time.Time{}, err
		}
	}
	if err != nil || len(msgs) == 0 {
		return nil, time.Time{}, err
	}
	oldest := msgs[0].Enqueued
	for _, m := range msgs {
		if m.Enqueued.Before(oldest) {
			oldest = m.Enqueued
		}
	}
	if !full && !force && now.Sub(oldest) < d.o.BatchAge {
		return nil, oldest.Add(d.o.BatchAge), nil
	}
	b := &store.Batch{Created: now, Next: now}
	for {
		b.Messages = msgs
		b.ID = batchID(d.o.Household, msgs)
		body, err := d.tr.Encode(transport.Batch{ID: b.ID, Household: d.o.Household, Messages: msgs}, now)
		if err == nil && (d.lim.MaxWireBytes == 0 || len(body) <= d.lim.MaxWireBytes) {
			b.Bytes = len(body)
			break
		}
		if len(msgs) == 1 || err != nil && !errors.Is(err, transport.ErrTooLarge) {
			if err == nil {
				err = fmt.Errorf("%d bytes on the wire: %w", len(body), transport.ErrTooLarge)
			}
			if err := d.deadLetter(tx, b, "too_large", err.Error(), now); err != nil {
				return nil, time.Time{}, err
			}
			for _, m := range msgs {
				if err := tx.Dequeue(m.Seq); err != nil {
					return nil, time.Time{}, err
				}
			}
			return nil, now, nil
		}
		msgs = msgs[:len(msgs)*3/4] // compressed over the wire limit: a smaller batch
	}
	if err := tx.PutBatch(b); err != nil {
		return nil, time.Time{}, err
	}
	for _, m := range msgs {
		if err := tx.Dequeue(m.Seq); err != nil {
			return nil, time.Time{}, err
		}
	}
	return b, time.Time{}, nil
}

// deadLetter moves b aside (deleting it from the batches if it was stored), audited.
func (d *Delivery) deadLetter(tx *store.Tx, b *store.Batch, reason, detail string, now time.Time) error {
	if b.Seq != 0 {
		if err := tx.DeleteBatch(b.Seq); err != nil {
			return err
		}
	}
	dropped, err := tx.PutDeadLetter(&store.DeadLetter{At: now, Reason: reason, Detail: detail, Batch: *b}, d.o.DeadLetterKeep)
	if err != nil {
		return err
	}
	d.dead.WithLabelValues(reason).Inc()
	if dropped > 0 {
		d.dead.WithLabelValues("evicted").Add(float64(dropped))
	}
	d.log.Error("batch moved to the dead letters", "batch", b.ID, "messages", len(b.Messages), "reason", reason, "detail", detail)
	return tx.Audit("sync_dead_letter", map[string]any{"batch": b.ID, "messages": len(b.Messages), "reason": reason,
		"detail": detail, "evicted_older": dropped})
}

// resumeWindow is this hub's retry window after an outage of the given length:
// LongOutage·2^(k+φ), the smallest such not shorter than twice the outage (k ≥ 0),
// at most ResumeSpread. φ in [0,1) is fixed by the household's pseudonym, so the
// hubs of a fleet change windows at outage lengths spread evenly on a log scale, not
// all at once; after an outage D the fleet's windows lie between 2D and 4D. Twice:
// a hub's outage begins at its first failed send, up to its interval between sends
// after the receiver went down, so a fleet's hubs see outages between D minus that
// interval and D (windows of D to 2D bunched a day-long outage's return early:
// 3.4× the steady rate over 15 minutes at make bench-fleet, 2.4× now).
func (d *Delivery) resumeWindow(outage time.Duration) time.Duration {
	phi, _ := d.phases()
	e := math.Log2(2*float64(outage)/float64(d.o.LongOutage)) - phi
	k := math.Max(0, math.Ceil(e))
	w := time.Duration(float64(d.o.LongOutage) * math.Exp2(k+phi))
	return max(min(w, d.o.ResumeSpread), time.Millisecond)
}

// phases are the household's two fixed fractions in [0,1): where its windows change
// on the log scale of outage lengths, and its slot in a window.
func (d *Delivery) phases() (float64, float64) {
	h := sha256.Sum256([]byte("hearth resume\x00" + d.o.Household))
	f := func(b []byte) float64 { return float64(binary.BigEndian.Uint64(b)>>11) / (1 << 53) }
	return f(h[:8]), f(h[8:16])
}

// nextSlot is the wait until this hub's next retry slot during a long outage: once
// every resume window, at a phase in it fixed by the household's pseudonym (uniform
// over a fleet), plus a jitter of up to 1% of the window. When a receiver comes back,
// a fleet's hubs therefore arrive spread over their windows, and each within one
// window. (Drawing every wait at random instead bunches them: what is left of a
// random wait at a random moment is front-loaded, and the sum of a few of them humps.)
func (d *Delivery) nextSlot(now time.Time, outage time.Duration) time.Duration {
	window := int64(d.resumeWindow(outage))
	_, slot := d.phases()
	phase := int64(slot * float64(window))
	t := now.UnixNano()
	next := t - ((t-phase)%window+window)%window + window // the first slot after now
	return time.Duration(next-t) + time.Duration(d.o.Rand()*float64(window)/100)
}

// retryWait is how long a batch waits after its attempts-th failure: drawn uniformly
// from zero to the exponential bound (full jitter), or until the hub's slot once the
// outage is long (nextSlot); never less than the receiver's Retry-After.
func (d *Delivery) retryWait(attempts uint32, retryAfter, outage time.Duration, now time.Time) time.Duration {
	bo := &backoff.ExponentialBackOff{InitialInterval: d.o.InitialBackoff, RandomizationFactor: 0, Multiplier: 2,
		MaxInterval: d.o.MaxBackoff, MaxElapsedTime: 0, Stop: backoff.Stop, Clock: backoff.SystemClock}
	bo.Reset()
	bound := bo.NextBackOff()
	for i := uint32(1); i < attempts && i < 64 && bound < d.o.MaxBackoff; i++ {
		bound = bo.NextBackOff()
	}
	wait := time.Duration(d.o.Rand() * float64(bound))
	if outage >= d.o.LongOutage {
		wait = d.nextSlot(now, outage) // after a long outage: the hub's own slot in its window
	}
	if retryAfter > 0 {
		ra := min(retryAfter, d.o.MaxRetryAfter)
		wait = ra + time.Duration(d.o.Rand()*float64(min(ra, bound)))
	}
	return max(wait, time.Millisecond)
}
