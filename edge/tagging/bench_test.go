package tagging_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// BenchmarkEvaluateStandardSet evaluates the whole standard rule set over 28 days of
// rollups of 50 devices (5 simulated homes with all 10 simulated appliance kinds, in
// one store), every consent given: the cost of one scheduled evaluation.
func BenchmarkEvaluateStandardSet(b *testing.B) {
	rs, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		b.Fatal(err)
	}
	kinds := []device.Kind{device.KindFridge, device.KindFreezer, device.KindWasher, device.KindOven, device.KindStove,
		device.KindMicrowave, device.KindKettle, device.KindToaster, device.KindDishwasher, device.KindKitchenCabinet}
	var all []device.Reading
	var end time.Time
	for i := range 5 {
		hh, err := sim.New(sim.Options{Persona: sim.Personas()[i], Seed: int64(100 + i), Kinds: kinds, Prefix: fmt.Sprintf("h%d-", i)})
		if err != nil {
			b.Fatal(err)
		}
		end = hh.Now().AddDate(0, 0, 28)
		all = hh.Advance(all, end)
	}
	slices.SortStableFunc(all, func(x, y device.Reading) int { return x.DeviceTime.Compare(y.DeviceTime) })
	p, err := replay.Open(b.TempDir(), replay.Options{Rules: rs, Consent: func(string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, r := range all {
		if err := p.Add(r); err != nil {
			b.Fatal(err)
		}
	}
	tags, err := p.Finish()
	if err != nil {
		b.Fatal(err)
	}
	devs, _ := p.Devices()
	if len(devs) != 50 || len(tags) != len(rs.Rules) {
		b.Fatalf("%d devices, %d of %d tags", len(devs), len(tags), len(rs.Rules))
	}
	eng := p.Engine()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := eng.Evaluate(end.Add(-time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/eval")
	b.ReportMetric(float64(len(devs)), "devices")
	b.ReportMetric(float64(len(rs.Rules)), "rules")
}
