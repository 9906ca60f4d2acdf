package devicetest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Plan is what the Sink does with one submission.
type Plan int

// The plans of a submission.
const (
	// Commit takes the readings: done(nil) from another goroutine, as a store's
	// group commit does.
	Commit Plan = iota
	// Retry refuses them with the Sink's retryable error (a full store: it may pass),
	// from another goroutine.
	Retry
	// Reject refuses them with the Sink's permanent error (a reading ingest can never
	// take), before Submit returns, as ingest does.
	Reject
	// Hold keeps them until Release commits them.
	Hold
)

// Sink is a device.Sink for tests of sources. It commits what it is given unless told
// otherwise (Next), records every reading committed, checks each reading as it
// arrives (device.Reading.Validate), and notes a submission made after Stop (after the
// source's Run returned). Safe for concurrent use.
type Sink struct {
	retryable, permanent error
	delay                time.Duration

	mu        sync.Mutex
	plan      []Plan
	held      []heldBatch
	committed []device.Reading
	refused   int
	invalid   []error
	stopped   bool
	late      int
}

type heldBatch struct {
	rs   []device.Reading
	done func(error)
}

// SinkOptions configure a Sink.
type SinkOptions struct {
	// Retryable and Permanent are the errors Retry and Reject refuse with, wrapped:
	// errors the source under test classifies as a refusal that may pass (the store's
	// ErrQuota) and one that is final (ingest's ErrRejected). Defaults: ErrRetryable and
	// ErrPermanent, which a source's classifier must then know.
	Retryable, Permanent error
	// Delay, when set, is how long a commit takes: done(nil) comes that much after
	// Submit (from another goroutine), so that submissions overlap.
	Delay time.Duration
}

// The default refusals of a Sink.
var (
	ErrRetryable = errors.New("devicetest: refused for now")
	ErrPermanent = errors.New("devicetest: refused for good")
)

// NewSink returns a Sink that commits everything until told otherwise. nil o means
// defaults.
func NewSink(o *SinkOptions) *Sink {
	s := &Sink{retryable: ErrRetryable, permanent: ErrPermanent}
	if o != nil {
		if o.Retryable != nil {
			s.retryable = o.Retryable
		}
		if o.Permanent != nil {
			s.permanent = o.Permanent
		}
		s.delay = o.Delay
	}
	return s
}

// Next plans the next submissions, in order; after them, Commit again.
func (s *Sink) Next(ps ...Plan) {
	s.mu.Lock()
	s.plan = append(s.plan, ps...)
	s.mu.Unlock()
}

// Submit implements device.Sink.
func (s *Sink) Submit(rs []device.Reading, done func(error)) {
	rs = append([]device.Reading(nil), rs...) // Submit does not keep the caller's slice
	s.mu.Lock()
	if s.stopped {
		s.late++
	}
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			s.invalid = append(s.invalid, err)
		}
	}
	p := Commit
	if len(s.plan) > 0 {
		p, s.plan = s.plan[0], s.plan[1:]
	}
	switch p {
	case Hold:
		s.held = append(s.held, heldBatch{rs, done})
		s.mu.Unlock()
		return
	case Reject:
		s.refused++
		s.mu.Unlock()
		done(fmt.Errorf("devicetest sink: %w", s.permanent))
		return
	case Retry:
		s.refused++
		s.mu.Unlock()
		go done(fmt.Errorf("devicetest sink: %w", s.retryable))
		return
	}
	// Taken in submission order, as a store commits; done follows.
	s.committed = append(s.committed, rs...)
	s.mu.Unlock()
	go func() {
		if s.delay > 0 {
			time.Sleep(s.delay) // the commit's latency, not a wait for anything
		}
		done(nil)
	}()
}

// Release commits the oldest held submission; false when none is held.
func (s *Sink) Release() bool {
	s.mu.Lock()
	if len(s.held) == 0 {
		s.mu.Unlock()
		return false
	}
	h := s.held[0]
	s.held = s.held[1:]
	s.committed = append(s.committed, h.rs...)
	s.mu.Unlock()
	h.done(nil)
	return true
}

// Held is how many submissions are held.
func (s *Sink) Held() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.held) }

// Refused is how many submissions were refused (Retry or Reject).
func (s *Sink) Refused() int { s.mu.Lock(); defer s.mu.Unlock(); return s.refused }

// Committed returns the readings committed so far, in commit order.
func (s *Sink) Committed() []device.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]device.Reading(nil), s.committed...)
}

// Invalid returns the validation errors of the readings that reached the sink.
func (s *Sink) Invalid() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.invalid...)
}

// Stop marks that the source's Run returned: a submission after it is counted by Late.
func (s *Sink) Stop() { s.mu.Lock(); s.stopped = true; s.mu.Unlock() }

// Late is how many submissions came after Stop.
func (s *Sink) Late() int { s.mu.Lock(); defer s.mu.Unlock(); return s.late }

// Has reports whether a reading of value v was committed.
func (s *Sink) Has(v float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.committed {
		if r.Value == v {
			return true
		}
	}
	return false
}
