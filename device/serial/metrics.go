package serial

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/firmware-proto/frame"
)

// Fault classes as metric labels: the framing classes of SPEC.md §7 plus the two that
// concern intact frames.
const (
	faultTooLong     = "too_long"
	faultBadCOBS     = "bad_cobs"
	faultTruncated   = "truncated"
	faultBadLength   = "bad_length"
	faultBadCRC      = "bad_crc"
	faultBadVersion  = "bad_version"
	faultBadPayload  = "bad_payload"
	faultUnknownType = "unknown_type"
	faultHubType     = "hub_type" // a hub → device type received from a device: ignored
)

var faultClasses = []string{faultTooLong, faultBadCOBS, faultTruncated, faultBadLength, faultBadCRC,
	faultBadVersion, faultBadPayload, faultUnknownType, faultHubType}

func faultClass(err error) string {
	switch {
	case errors.Is(err, frame.ErrTooLong):
		return faultTooLong
	case errors.Is(err, frame.ErrBadCOBS):
		return faultBadCOBS
	case errors.Is(err, frame.ErrTruncated):
		return faultTruncated
	case errors.Is(err, frame.ErrBadLength):
		return faultBadLength
	case errors.Is(err, frame.ErrBadCRC):
		return faultBadCRC
	}
	return faultBadVersion
}

// Item results as metric labels.
const (
	itemCommitted = "committed" // stored by this source's submission
	itemDuplicate = "duplicate" // already committed: acked again, not resubmitted
	itemInvalid   = "invalid"   // failed validation: Nack INVALID, consumed
	itemRefused   = "refused"   // the sink refused the batch for now: Nack BUSY, device retries
	itemRejected  = "rejected"  // the sink refused the batch for good: stored as error readings, acked
	itemNoSession = "no_session"
	itemWindow    = "out_of_window" // too far above a gap: dropped, the device resends it
)

var itemResults = []string{itemCommitted, itemDuplicate, itemInvalid, itemRefused, itemRejected, itemNoSession, itemWindow}

type metrics struct {
	cs         []prometheus.Collector
	bytes      prometheus.Counter
	frames     *prometheus.CounterVec
	faults     *prometheus.CounterVec
	items      *prometheus.CounterVec
	acks       prometheus.Counter
	nacks      *prometheus.CounterVec
	nacksDrop  prometheus.Counter
	reconnects prometheus.Counter
	connected  prometheus.Gauge
	pending    prometheus.Gauge
}

func newMetrics(port string) *metrics {
	cl := prometheus.Labels{"port": port}
	m := &metrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_serial_bytes_total", ConstLabels: cl,
			Help: "Bytes read from the serial port: frames, delimiters and noise."}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_serial_frames_total", ConstLabels: cl,
			Help: "Intact frames received, by message type."}, []string{"type"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_serial_faults_total", ConstLabels: cl,
			Help: "Frames dropped, by class: too_long, bad_cobs, truncated, bad_length, bad_crc, bad_version (SPEC.md §7); bad_payload, unknown_type (intact frames, Nacked); hub_type (ignored)."},
			[]string{"class"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_serial_items_total", ConstLabels: cl,
			Help: "Items (readings, events, inventory changes) received, by result: committed, duplicate, invalid, refused (by the sink, for now: Nack BUSY), rejected (by the sink, for good: stored as error readings and acknowledged), no_session, out_of_window."},
			[]string{"result"}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_serial_acks_total", ConstLabels: cl,
			Help: "Ack frames sent to the device."}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_serial_nacks_total", ConstLabels: cl,
			Help: "Nack frames sent to the device, by reason."}, []string{"reason"}),
		nacksDrop: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_serial_nacks_suppressed_total", ConstLabels: cl,
			Help: "Nacks not sent because of the Nack rate limit (nacks_per_second)."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_serial_reconnects_total", ConstLabels: cl,
			Help: "Times the port was lost (unplugged, I/O error) and the source went back to opening it."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hearth_serial_connected", ConstLabels: cl,
			Help: "1 while the port is open."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hearth_serial_pending_batches", ConstLabels: cl,
			Help: "Batches handed to the sink and not yet committed (at max_pending the port is not read)."}),
	}
	for _, c := range faultClasses {
		m.faults.WithLabelValues(c)
	}
	for _, r := range itemResults {
		m.items.WithLabelValues(r)
	}
	m.cs = []prometheus.Collector{m.bytes, m.frames, m.faults, m.items, m.acks, m.nacks, m.nacksDrop,
		m.reconnects, m.connected, m.pending}
	return m
}

// logLimiter lets one message per key through every period and counts the rest, so a
// noisy line or a flooding device cannot fill the log.
type logLimiter struct {
	log    *slog.Logger
	period time.Duration
	mu     sync.Mutex
	last   map[string]time.Time
	quiet  map[string]int
}

func newLogLimiter(log *slog.Logger, period time.Duration) *logLimiter {
	return &logLimiter{log: log, period: period, last: map[string]time.Time{}, quiet: map[string]int{}}
}

// Warn logs msg under key unless one was logged less than a period ago.
func (l *logLimiter) Warn(key, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		l.quiet[key]++
		l.mu.Unlock()
		return
	}
	n := l.quiet[key]
	l.last[key], l.quiet[key] = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	l.log.Warn(msg, args...)
}

// tokens is a token bucket: rate tokens a second, at most rate in store.
type tokens struct {
	rate  float64
	have  float64
	stamp time.Time
}

func (t *tokens) take(now time.Time) bool {
	if t.stamp.IsZero() {
		t.have = t.rate
	} else {
		t.have = min(t.rate, t.have+now.Sub(t.stamp).Seconds()*t.rate)
	}
	t.stamp = now
	if t.have < 1 {
		return false
	}
	t.have--
	return true
}
