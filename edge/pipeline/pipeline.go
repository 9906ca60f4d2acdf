// Package pipeline builds the edge's data path — ingest → store → rollup → tagging —
// the same way for the agent (cmd/hearth), a replay of a recorded history
// (edge/tagging/replay) and the evaluation over real and simulated homes
// (edge/tagging/eval): one constructor, so that the three cannot drift apart in how
// the parts are put together (the rollup cursor protected from retention, one time
// zone for rollups and tags, one hub clock for the store and ingest).
package pipeline

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/edge/ingest"
	rollupstage "github.com/hearth-iot/hearth/edge/rollup/stage"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
)

// Options configure the parts. Each part's own options keep their documented
// defaults where left zero; Location, Now, Logger and Registerer are given to every
// part that takes them.
type Options struct {
	// Location is the household's time zone, of rollups and tags (nil: UTC).
	Location *time.Location
	// Rules are the tag rules (required).
	Rules *tagging.RuleSet
	// Now is the hub clock of the store and ingest (nil: time.Now); a replay gives
	// the time of the reading being ingested.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	Store   store.Options // Protect always holds the rollup's cursor
	Ingest  ingest.Options
	Rollup  rollupstage.ConsumerOptions
	Tagging tagging.Options
}

// Pipeline is the edge's data path: readings submitted to Ingest are committed by
// Store, folded into rollups by Rollup and scored into tags by Tags. The caller runs
// Rollup and Tags (a supervisor's stages in the agent, steps in a replay).
type Pipeline struct {
	Store  *store.Store
	Ingest *ingest.Ingest
	Rollup *rollupstage.Consumer
	Tags   *tagging.Engine
}

// Open opens (or creates) the store at path and builds the parts over it.
func Open(path string, o Options) (*Pipeline, error) {
	if o.Rules == nil {
		return nil, fmt.Errorf("pipeline: no tag rules")
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	so := o.Store
	so.Protect = append([]string{rollupstage.CursorName}, so.Protect...)
	so.Now, so.Logger, so.Registerer = o.Now, o.Logger, o.Registerer
	st, err := store.Open(path, &so)
	if err != nil {
		return nil, err
	}
	io := o.Ingest
	io.Now, io.Logger, io.Registerer = o.Now, o.Logger, o.Registerer
	ro := o.Rollup
	ro.Location, ro.Logger, ro.Registerer = o.Location, o.Logger, o.Registerer
	to := o.Tagging
	to.Location, to.Logger, to.Registerer = o.Location, o.Logger, o.Registerer
	return &Pipeline{Store: st, Ingest: ingest.New(st, &io), Rollup: rollupstage.NewConsumer(st, &ro),
		Tags: tagging.New(st, o.Rules, &to)}, nil
}

// Close unregisters the parts' metrics and closes the store.
func (p *Pipeline) Close() error {
	p.Tags.Unregister()
	p.Rollup.Unregister()
	p.Ingest.Unregister()
	return p.Store.Close()
}
