package metricset

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterUnregisterAndRollback(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	s := Must(reg, a, b)
	s.Unregister()
	// Unregistered, the same names register again.
	s = Must(reg, a, b)
	// A clash fails the whole set and leaves nothing of it registered.
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "c"})
	b2 := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	if _, err := Register(reg, c, b2); err == nil {
		t.Fatal("a duplicate metric registered")
	}
	if !reg.Unregister(prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})) {
		t.Error("the first set's b_total was lost")
	}
	if reg.Unregister(c) {
		t.Error("c_total stayed registered after its set failed")
	}
	s.Unregister()
	var nilSet *Set
	nilSet.Unregister() // no panic
	if n, err := Register(nil, a); err != nil || n == nil {
		t.Errorf("nil registerer: %v", err)
	}
}

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "p_total", Help: "p"}, []string{"reason", "topic"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	Must(reg, v, g)
	v.WithLabelValues("rejected", "a/b").Add(2)
	v.WithLabelValues("malformed", "a/b").Add(3)
	g.Set(7)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"p_total", []string{"reason", "rejected", "topic", "a/b"}, 2},
		{"p_total", []string{"reason", "malformed"}, 3},
		{"p_total", []string{"reason", "limit"}, 0},
		{"g", nil, 7},
		{"missing", nil, 0},
	} {
		if got, err := Value(reg, tc.name, tc.labels...); err != nil || got != tc.want {
			t.Errorf("Value(%s, %q) = %v, %v; want %v", tc.name, tc.labels, got, err, tc.want)
		}
	}
	if _, err := Value(reg, "p_total", "reason"); err == nil {
		t.Error("an odd label list was accepted")
	}
}
