package devicetest

import (
	"errors"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

var errFull = errors.New("full")

func reading(v float64) []device.Reading {
	return []device.Reading{{Device: "d1", Kind: device.KindFridge, Signal: device.SignalPower, Value: v}}
}

// The fake sink does what it is planned to, in order, then commits again; it calls done
// exactly once per submission.
func TestSinkPlans(t *testing.T) {
	s := NewSink(&SinkOptions{Retryable: errFull, Delay: time.Millisecond})
	s.Next(Retry, Reject, Hold)
	results := make(chan error, 10)
	done := func(err error) { results <- err }
	for v := 1.0; v <= 4; v++ {
		s.Submit(reading(v), done)
	}
	got := map[string]int{}
	for range 3 { // the held one answers only when released
		err := <-results
		switch {
		case err == nil:
			got["commit"]++
		case errors.Is(err, errFull):
			got["retry"]++
		case errors.Is(err, ErrPermanent):
			got["reject"]++
		}
	}
	if got["commit"] != 1 || got["retry"] != 1 || got["reject"] != 1 || s.Held() != 1 || s.Refused() != 2 {
		t.Fatalf("outcomes %v, held %d, refused %d", got, s.Held(), s.Refused())
	}
	if s.Has(3) || !s.Has(4) {
		t.Error("a held reading counts as committed, or a committed one does not")
	}
	if !s.Release() || <-results != nil || !s.Has(3) || s.Release() {
		t.Error("Release did not commit the held reading once")
	}
	if c := s.Committed(); len(c) != 2 || c[0].Value != 4 || c[1].Value != 3 {
		t.Errorf("committed %+v, want 4 then 3 (in commit order)", c)
	}
}

func TestSinkChecksReadingsAndLateness(t *testing.T) {
	s := NewSink(nil)
	bad := reading(1)
	bad[0].Signal = "mood"
	s.Submit(bad, func(error) {})
	if n := len(s.Invalid()); n != 1 {
		t.Errorf("%d invalid readings noted, want 1", n)
	}
	s.Stop()
	answered := make(chan error, 1)
	s.Submit(reading(2), func(err error) { answered <- err })
	if err := <-answered; err != nil || !s.Has(2) {
		t.Errorf("late submission: %v", err)
	}
	if s.Late() != 1 {
		t.Errorf("late submissions %d, want 1", s.Late())
	}
}
