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
	// The write-ahead log and the batch behind it.
	groups           prometheus.Counter
	logSeconds       prometheus.Histogram
	checkpoints      *prometheus.CounterVec
	checkpointEvents prometheus.Histogram
	logTorn          prometheus.Counter
	logDamage        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Store) *metrics {
	m := &metrics{
		committed: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_readings_committed_total",
			Help: "Readings committed durably to the event log."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_readings_duplicate_total",
			Help: "Readings a device delivered again (same device, boot and seq): acknowledged, not stored twice."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_commits_total",
			Help: "Commits of the database behind the write-ahead log (each two fdatasyncs)."}),
		groups: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_group_commits_total",
			Help: "Group commits of readings to the write-ahead log (each one write and one fdatasync)."}),
		logSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_group_commit_seconds",
			Help:    "Duration of one group commit to the write-ahead log, fdatasync included (not the window before it).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_checkpoints_total",
			Help: "Commits of the database, by reason (interval, size, durable, log_full, sync, open, close, compact)."}, []string{"reason"}),
		checkpointEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_checkpoint_events",
			Help: "Events per commit of the database.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		logTorn: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_log_torn_tails_total",
			Help: "Opens that found the write-ahead log ending with a torn record (a write a crash interrupted, never acknowledged) and cut it off."}),
		logDamage: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_log_damaged_total",
			Help: "Opens that found the write-ahead log damaged (checksum failure before its end, missing segment): what follows is counted and reported, the log moved aside."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_readings_refused_total",
			Help: "Readings the store refused, by reason (quota, write_error, intake_stopped, too_large)."}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_store_readings_evicted_total",
			Help: "Raw readings deleted by retention, by reason (age, quota)."}, []string{"reason"}),
		corruptions: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_store_corruptions_total",
			Help: "Corrupt databases moved aside at open."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_commit_seconds",
			Help: "Duration of one commit of the database, fdatasyncs included.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hearth_store_commit_readings",
			Help: "Readings per group commit to the write-ahead log.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
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
	for _, r := range []string{"interval", "size", "durable", "log_full", "sync", "open", "close", "compact", "quota", "retention"} {
		m.checkpoints.WithLabelValues(r)
	}
	flashGauge := func(name, help string, v func(FlashStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(s.Flash()) })
	}
	m.set = metricset.Must(reg, m.committed, m.duplicates, m.commits, m.refused, m.evicted, m.corruptions,
		m.commitSeconds, m.batchSize, m.compactions, m.compactedBytes, m.salvaged, m.metaDamage, m.quarantined,
		m.groups, m.logSeconds, m.checkpoints, m.checkpointEvents, m.logTorn, m.logDamage,
		flashGauge("hearth_store_written_today_bytes", "Bytes the store wrote to its disk since local midnight (the write-ahead log and the database).",
			func(f FlashStats) float64 { return float64(f.WrittenToday) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hearth_store_written_bytes_total",
			Help: "Bytes the store wrote to its disk since it opened (the write-ahead log and the database, as the store counts them: pages, headers, zero fill)."},
			func() float64 { return float64(s.Flash().WrittenTotal) }),
		flashGauge("hearth_store_written_projected_bytes_per_day", "The store's recent rate of writing to its disk (half-life 2 min), per day.",
			func(f FlashStats) float64 { return float64(f.ProjectedPerDay) }),
		flashGauge("hearth_store_flash_budget_bytes_per_day", "store.flash_budget: the bytes a day the writer holds to (0: off).",
			func(f FlashStats) float64 { return float64(f.BudgetBytesPerDay) }),
		flashGauge("hearth_store_commit_window_seconds", "The current group-commit window: the longest a reading waits for others to share its commit.",
			func(f FlashStats) float64 { return f.Window.Seconds() }),
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
