package main

import (
	"math/rand/v2"
	"time"
)

// pacing is -rate, -jitter and -seed: how a paced load spreads its messages.
//
// A household's devices do not publish in step: each has its own phase and its own
// clock drift. A load that fires every publisher at the same instant makes the
// readings arrive together and flatters a store that batches them (issue 17). So
// each publisher starts at a random phase within one period (1/rate) and each send
// is moved by a uniform jitter of ±jitter periods, from a generator seeded by seed
// and the publisher's index: the same flags give the same schedule.
type pacing struct {
	rate   float64 // messages per second per publisher; 0: as fast as acknowledged
	jitter float64 // fraction of a period each send may move either way
	seed   uint64
}

// schedule returns when each of msgs messages of publisher pub is due, as offsets
// from the load's start, or nil for an unpaced load. Message i is due at the
// publisher's phase (uniform in [0, period)) plus i periods plus a jitter uniform in
// [-jitter, +jitter) periods, but never before the previous message's time nor
// before the start: a publisher sends its messages in order.
func (p pacing) schedule(pub, msgs int) []time.Duration {
	if p.rate <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(p.seed, uint64(pub)))
	period := float64(time.Second) / p.rate
	phase := rng.Float64() * period
	out := make([]time.Duration, msgs)
	var prev time.Duration
	for i := range out {
		t := time.Duration(phase + float64(i)*period + (rng.Float64()*2-1)*p.jitter*period)
		t = max(t, prev, 0)
		out[i] = t
		prev = t
	}
	return out
}
