package sim_test

import (
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

// BenchmarkAdvance advances households one simulated hour per op, reusing the
// reading buffer as a publisher would, and reports readings per second.
func BenchmarkAdvance(b *testing.B) {
	for _, c := range []struct {
		name string
		opts sim.Options
	}{
		{"default", sim.Options{Persona: sim.PersonaDefault, Seed: 1}},
		{"family-all-kinds", sim.Options{Persona: sim.PersonaFamily, Seed: 1, Kinds: allKinds}},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newHousehold(b, c.opts)
			var rs []device.Reading
			total := 0
			b.ReportAllocs()
			for b.Loop() {
				rs = h.Advance(rs[:0], h.Now().Add(time.Hour))
				total += len(rs)
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(total)/float64(b.N), "readings/op")
		})
	}
}
