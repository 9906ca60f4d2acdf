package store

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/internal/metricset"
)

type metrics struct {
	set            *metricset.Set
	committed      prometheus.Counter
	duplicates     prometheus.Counter
	commits        prometheus.Counter
	refused        *prometheus.CounterVec
	evicted        *prometheus.CounterVec
	corruptions    prometheus.Counter
	commitSeconds  prometheus.Histogram
	batchSize      prometheus.Histogram
	compactions    prometheus.Counter
	compactedBytes prometheus.Counter
	salvaged       *prometheus.CounterVec
	metaDamage     prometheus.Counter
	quarantined    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	m := &metrics{
		committed: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_readings_committed_total",
			Help: "Readings committed durably to the event log."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_readings_duplicate_total",
			Help: "Readings a device delivered again (same device, boot and seq): acknowledged, not stored twice."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_commits_total",
			Help: "Group commits (transactions with fsync) of readings."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_readings_refused_total",
			Help: "Readings the store refused, by reason (quota, write_error, intake_stopped, too_large)."}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_readings_evicted_total",
			Help: "Raw readings deleted by retention, by reason (age, quota)."}, []string{"reason"}),
		corruptions: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_corruptions_total",
			Help: "Corrupt databases moved aside at open."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_commit_seconds",
			Help: "Duration of one group commit, fsync included.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_commit_readings",
			Help: "Readings per group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_compactions_total",
			Help: "Compactions of the database file (free pages returned to the disk)."}),
		compactedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_compaction_freed_bytes_total",
			Help: "Bytes of file returned to the disk by compaction."}),
		salvaged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_salvaged_records_total",
			Help: "Records of a damaged database moved aside at open, by bucket and result: recovered (copied into the new store) or lost."},
			[]string{"bucket", "result"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_records_quarantined_total",
			Help: "Records a stage could not read, moved out of their bucket into the audit trail (record_quarantined), by bucket."},
			[]string{"bucket"}),
		metaDamage: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_meta_page_damaged_total",
			Help: "Opens that found one of the two meta pages damaged and used the other (the newest commit may be lost)."}),
	}
	for _, r := range []string{"quota", "write_error", "intake_stopped", "too_large"} {
		m.refused.WithLabelValues(r)
	}
	m.evicted.WithLabelValues("age")
	m.evicted.WithLabelValues("quota")
	m.set = metricset.Must(reg, m.committed, m.duplicates, m.commits, m.refused, m.evicted, m.corruptions,
		m.commitSeconds, m.batchSize, m.compactions, m.compactedBytes, m.salvaged, m.metaDamage, m.quarantined,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_store_queue_readings",
			Help: "Readings submitted and waiting for the writer."}, func() float64 { return float64(s.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_store_last_seq",
			Help: "Sequence of the newest committed event."}, func() float64 { return float64(s.LastSeq()) }),
	)
	return m
}

func (m *metrics) unregister() { m.set.Unregister() }

// countSalvage adds what salvage recovered and lost to the metrics.
func (m *metrics) countSalvage(r *SalvageReport) {
	if r == nil {
		return
	}
	for name, b := range r.Buckets {
		m.salvaged.WithLabelValues(name, "recovered").Add(float64(b.Recovered))
		m.salvaged.WithLabelValues(name, "lost").Add(float64(b.Lost))
	}
}
