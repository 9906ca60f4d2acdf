// Package metricset registers a component's Prometheus collectors together and
// unregisters them together, so that a component can be built, closed and built
// again against the same registry (tests, restarts in one process).
package metricset

import "github.com/prometheus/client_golang/prometheus"

// Set is collectors registered with one registerer. The zero value and a Set made
// with a nil registerer register nowhere.
type Set struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector
}

// Register registers cs with reg (nil: nowhere). If one fails, those already
// registered are unregistered again and the error returned.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) (*Set, error) {
	s := &Set{reg: reg}
	if reg == nil {
		return s, nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			s.Unregister()
			return nil, err
		}
		s.cs = append(s.cs, c)
	}
	return s, nil
}

// Must is Register for components whose collectors cannot clash: it panics on an
// error, as prometheus.MustRegister does.
func Must(reg prometheus.Registerer, cs ...prometheus.Collector) *Set {
	s, err := Register(reg, cs...)
	if err != nil {
		panic(err)
	}
	return s
}

// Unregister removes every collector of the set from its registerer.
func (s *Set) Unregister() {
	if s == nil || s.reg == nil {
		return
	}
	for _, c := range s.cs {
		s.reg.Unregister(c)
	}
	s.cs = nil
}
