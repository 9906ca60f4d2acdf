package store

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Health is the store's account of what it did not keep and why, for the health
// message that goes upstream (sync/summary) and `hearth status`. Counts are since
// Since (this start of the store), except Corruptions, which is since the store was
// created.
type Health struct {
	Since         time.Time         `json:"since"`
	Committed     uint64            `json:"committed"`
	Duplicates    uint64            `json:"duplicates"`
	Evicted       map[string]uint64 `json:"evicted"` // by reason: age, quota
	Refused       map[string]uint64 `json:"refused"` // by reason: quota, write_error, intake_stopped, too_large
	Corruptions   uint64            `json:"corruptions"`
	Compactions   uint64            `json:"compactions"`
	FileBytes     int64             `json:"file_bytes"`
	QuotaBytes    int64             `json:"quota_bytes"`
	IntakeStopped bool              `json:"intake_stopped"`
	// Salvage: what was salvaged from a damaged file moved aside at this start.
	Salvage *SalvageReport `json:"salvage,omitempty"`
	// MetaPageDamaged: Open found a meta page damaged and used the other one.
	MetaPageDamaged bool `json:"meta_page_damaged,omitempty"`
	// LogDamage: Open found the write-ahead log damaged (log.go).
	LogDamage *LogDamage `json:"log_damage,omitempty"`
	// Flash: what the store writes to its disk, against the flash budget.
	Flash FlashStats `json:"flash"`
}

// Health returns the store's counters. It does not touch the database, so it may be
// called inside a View or Update.
func (s *Store) Health() Health {
	h := Health{Since: s.started, Committed: counter(s.m.committed), Duplicates: counter(s.m.duplicates),
		Evicted: map[string]uint64{}, Refused: map[string]uint64{}, Corruptions: s.corruptions,
		Compactions: counter(s.m.compactions), FileBytes: fileSize(s.path), QuotaBytes: s.opts.QuotaBytes,
		IntakeStopped: s.Failed() != nil, MetaPageDamaged: s.metaDamage != "", Flash: s.Flash()}
	if s.logDamage != nil { // without the hub's paths: the report goes upstream
		d := *s.logDamage
		d.MovedTo = strings.ReplaceAll(d.MovedTo, filepath.Dir(s.path), "<data_dir>")
		h.LogDamage = &d
	}
	if s.salvage != nil { // without the hub's paths: the report goes upstream
		r := *s.salvage
		r.Error = strings.ReplaceAll(r.Error, filepath.Dir(s.path), "<data_dir>")
		h.Salvage = &r
	}
	for _, r := range []string{"age", "quota"} {
		h.Evicted[r] = counter(s.m.evicted.WithLabelValues(r))
	}
	for _, r := range []string{"quota", "write_error", "intake_stopped", "too_large"} {
		h.Refused[r] = counter(s.m.refused.WithLabelValues(r))
	}
	return h
}

func counter(c prometheus.Counter) uint64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}
