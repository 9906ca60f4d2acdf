// Package outbox delivers what sync/summary put in the store's outbox: in batches
// bounded by count, bytes and age, through a transport, deleting each batch from the
// outbox only after the transport acknowledged it. A batch that fails stays and is
// tried again with exponential backoff; the receiver de-duplicates redeliveries by the
// messages' deterministic ids.
package outbox

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/metricset"
	"github.com/hearth-iot/hearth/sync/transport"
)

// Options bound a batch. Zero fields take the defaults.
type Options struct {
	BatchCount int           // most messages per batch (default 500)
	BatchBytes int           // most bytes per batch (default 256 KiB)
	BatchAge   time.Duration // deliver a smaller batch once its oldest message is this old (default 10s)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Outbox delivers batches.
type Outbox struct {
	st   *store.Store
	tr   transport.Transport
	opts Options
	log  *slog.Logger
	bo   *backoff.ExponentialBackOff
	next time.Time // no delivery attempt before this (backoff)

	delivered *prometheus.CounterVec
	failures  prometheus.Counter
	pending   prometheus.GaugeFunc
	set       *metricset.Set
}

// New returns an Outbox delivering from st through tr.
func New(st *store.Store, tr transport.Transport, o *Options) *Outbox {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.BatchCount <= 0 {
		opts.BatchCount = 500
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 256 << 10
	}
	if opts.BatchAge <= 0 {
		opts.BatchAge = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = time.Second, 10*time.Minute, 0
	ob := &Outbox{st: st, tr: tr, opts: opts, log: opts.Logger.With("component", "outbox", "transport", tr.Name()), bo: bo,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_outbox_delivered_total",
			Help: "Delivered to the transport and acknowledged: messages and bytes."}, []string{"unit"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_outbox_failures_total",
			Help: "Batch deliveries that failed (the batch stays in the outbox)."}),
	}
	ob.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_outbox_messages", Help: "Messages waiting in the outbox."},
		func() float64 { return float64(ob.Pending()) })
	ob.delivered.WithLabelValues("messages")
	ob.delivered.WithLabelValues("bytes")
	ob.set = metricset.Must(opts.Registerer, ob.delivered, ob.failures, ob.pending)
	return ob
}

// Unregister removes the outbox's metrics.
func (o *Outbox) Unregister() { o.set.Unregister() }

// Pending is the number of messages in the outbox.
func (o *Outbox) Pending() int {
	n := 0
	_ = o.st.View(func(tx *store.Tx) error { n = tx.Count(store.Outbox); return nil })
	return n
}

// Step delivers at most one batch: one that is full by count or bytes, or whose
// oldest message is BatchAge old (any batch at all when force is set). It returns the
// number of messages delivered.
func (o *Outbox) Step(ctx context.Context, now time.Time, force bool) (int, error) {
	if now.Before(o.next) && !force {
		return 0, nil
	}
	var keys [][]byte
	var msgs [][]byte
	size := 0
	var oldest time.Time
	full := false
	err := o.st.View(func(tx *store.Tx) error {
		return tx.Range(store.Outbox, nil, func(k, v []byte) error {
			if len(v) < 8 {
				keys = append(keys, append([]byte(nil), k...)) // unreadable: dropped with the batch
				return nil
			}
			if len(msgs) >= o.opts.BatchCount || (size+len(v)-8 > o.opts.BatchBytes && len(msgs) > 0) {
				full = true
				return store.ErrStopRange
			}
			if oldest.IsZero() {
				oldest = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			}
			keys = append(keys, append([]byte(nil), k...))
			msgs = append(msgs, append([]byte(nil), v[8:]...))
			size += len(v) - 8
			return nil
		})
	})
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	if !full && !force && now.Sub(oldest) < o.opts.BatchAge {
		return 0, nil
	}
	h := sha256.New()
	for _, k := range keys {
		h.Write(k)
	}
	h.Write([]byte(o.st.InstallID()))
	batch := transport.Batch{ID: hex.EncodeToString(h.Sum(nil)[:16]), Messages: msgs}
	if err := o.tr.WriteBatch(ctx, batch); err != nil {
		o.failures.Inc()
		wait := o.bo.NextBackOff()
		o.next = now.Add(wait)
		o.log.Warn("delivery failed: batch kept, retrying", "messages", len(msgs), "retry_in", wait, "err", err)
		return 0, err
	}
	o.bo.Reset()
	o.next = time.Time{}
	if err := o.st.Update(func(tx *store.Tx) error {
		for _, k := range keys {
			if err := tx.Delete(store.Outbox, k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, err // delivered but not deleted: delivered again later, de-duplicated upstream
	}
	o.delivered.WithLabelValues("messages").Add(float64(len(msgs)))
	o.delivered.WithLabelValues("bytes").Add(float64(size))
	return len(msgs), nil
}

// Flush delivers everything in the outbox, batch by batch, ignoring BatchAge.
func (o *Outbox) Flush(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := o.Step(ctx, time.Now(), true)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}
