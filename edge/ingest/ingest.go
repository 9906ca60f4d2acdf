// Package ingest is the gate between sources and the store: it validates readings,
// stamps hub time, decides which clock a reading's event time comes from, and hands
// whole batches to the store, telling the source only once they are durable.
//
// # Which clock rollups trust
//
// Every reading keeps the hub's wall time at ingest (HubTime) and, when the device has
// a clock, the device's time (DeviceTime). The event time rollups use is DeviceTime
// when ingest trusts it, else HubTime. Ingest trusts a device time that is
//   - after TrustFloor (2020-01-01: a clock before that was never set), and
//   - not more than MaxSkew ahead of the hub, when the hub's own clock is past
//     TrustFloor (a Pi without RTC boots in 1970 until NTP answers; meanwhile the
//     device's clock is the better one).
//
// An untrusted device time is cleared and counted (reason "clock"). The log is ordered
// by the store's sequence, never by either clock, so a clock jump cannot reorder it.
package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// TrustFloor is the earliest time a clock is believed to have been set.
var TrustFloor = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// maxYear bounds device timestamps: anything later is impossible, not merely untrusted.
var maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// Options tune an Ingest. Zero fields take their defaults.
type Options struct {
	// MaxSkew is how far a device clock may run ahead of the hub's and still be
	// trusted (default 5 minutes).
	MaxSkew time.Duration
	// Now is the hub's wall clock (default time.Now).
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Ingest implements device.Sink in front of the store.
type Ingest struct {
	next    device.Sink
	maxSkew time.Duration
	now     func() time.Time
	log     *slog.Logger

	readings *prometheus.CounterVec
	batches  prometheus.Counter
	latency  prometheus.Histogram
	set      *metricset.Set

	ingested, committed, refused prometheus.Counter // children of readings
}

// ErrRejected wraps every refusal by ingest itself (as opposed to the store).
var ErrRejected = errors.New("readings rejected")

// New returns an Ingest that hands accepted readings to next (the store).
// DefaultOptions are the documented defaults: the one place they are written
// (internal/config's defaults are these).
func DefaultOptions() Options { return Options{MaxSkew: 5 * time.Minute} }

func New(next device.Sink, o *Options) *Ingest {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultOptions().MaxSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	in := &Ingest{next: next, maxSkew: opts.MaxSkew, now: opts.Now, log: opts.Logger.With("component", "ingest"),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_ingest_readings_total",
			Help: "Readings handed to ingest, by result: ingested (accepted and passed to the store), committed, refused (by the store), invalid, clock (device time untrusted, hub time used)."},
			[]string{"result"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_ingest_batches_total",
			Help: "Batches handed to ingest."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_ingest_ack_seconds",
			Help:    "Time from a batch reaching ingest to the store reporting it durable (reading-to-ack).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	// The hot results, resolved once: a label lookup per batch hashed the label and
	// took the vector's lock on every publish.
	in.ingested, in.committed, in.refused = in.readings.WithLabelValues("ingested"),
		in.readings.WithLabelValues("committed"), in.readings.WithLabelValues("refused")
	for _, r := range []string{"invalid", "clock"} {
		in.readings.WithLabelValues(r)
	}
	in.set = metricset.Must(opts.Registerer, in.readings, in.batches, in.latency)
	return in
}

// Unregister removes the metrics from the registerer given to New.
func (in *Ingest) Unregister() { in.set.Unregister() }

// Submit implements device.Sink. A batch with any invalid reading is refused whole,
// so nothing is ever stored half.
func (in *Ingest) Submit(rs []device.Reading, done func(error)) {
	in.batches.Inc()
	start := time.Now()
	if len(rs) == 0 {
		done(nil)
		return
	}
	now := in.now()
	hubTrusted := !now.Before(TrustFloor)
	untrusted := 0
	for i := range rs {
		r := &rs[i]
		if err := r.Validate(); err != nil {
			in.readings.WithLabelValues("invalid").Add(float64(len(rs)))
			done(fmt.Errorf("%w: reading %d of %d: %v", ErrRejected, i+1, len(rs), err))
			return
		}
		if !r.DeviceTime.IsZero() && (r.DeviceTime.Before(time.Unix(0, 0)) || r.DeviceTime.After(maxTime)) {
			in.readings.WithLabelValues("invalid").Add(float64(len(rs)))
			done(fmt.Errorf("%w: reading %d of %d: device %q: impossible timestamp %s", ErrRejected, i+1, len(rs), r.Device, r.DeviceTime.UTC().Format(time.RFC3339)))
			return
		}
	}
	for i := range rs {
		r := &rs[i]
		r.HubTime = now
		if !r.DeviceTime.IsZero() {
			if r.DeviceTime.Before(TrustFloor) || (hubTrusted && r.DeviceTime.After(now.Add(in.maxSkew))) {
				r.DeviceTime = time.Time{}
				untrusted++
			}
		}
	}
	if untrusted > 0 {
		in.readings.WithLabelValues("clock").Add(float64(untrusted))
	}
	in.ingested.Add(float64(len(rs)))
	n := len(rs)
	in.next.Submit(rs, func(err error) {
		in.latency.Observe(time.Since(start).Seconds())
		if err != nil {
			in.refused.Add(float64(n))
		} else {
			in.committed.Add(float64(n))
		}
		done(err)
	})
}
