package sim_test

import (
	"fmt"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

func Example() {
	h, err := sim.New(sim.Options{
		Persona: sim.PersonaFamily,
		Seed:    42,
		Start:   time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC),
		Prefix:  "home1-",
	})
	if err != nil {
		panic(err)
	}
	for _, a := range h.Appliances() {
		fmt.Println(a.ID, a.Kind)
	}
	// A simulated week and a night, in steps of an hour as a demo would.
	start := h.Now()
	week := start.Add(7 * 24 * time.Hour)
	var rs []device.Reading
	opened := 0
	for h.Now().Before(week.Add(6 * time.Hour)) {
		rs = h.Advance(rs[:0], h.Now().Add(time.Hour))
		for _, r := range rs {
			if r.Kind == device.KindFridge && r.Signal == device.SignalDoor && r.Value == 1 && r.DeviceTime.Before(week) {
				opened++
			}
		}
	}
	days := h.Truth()
	total := 0
	for _, d := range days {
		total += d.FridgeOpenings
	}
	fmt.Println(len(days), "days; first", days[0].Date, days[0].Weekday)
	fmt.Println("fridge openings:", total, "in the truth,", opened, "read")
	// Output:
	// home1-fridge fridge
	// home1-washer washer
	// home1-oven oven
	// home1-stove stove
	// home1-microwave microwave
	// home1-toaster toaster
	// home1-dishwasher dishwasher
	// 7 days; first 2026-01-05 Monday
	// fridge openings: 187 in the truth, 187 read
}
