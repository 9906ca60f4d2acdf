package replay

import (
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/tagging"
)

// The daily evaluation of a finished day is as of that day's end, also when days
// without readings follow it (it used to be dated the day before the next reading).
func TestDailyEvaluationAfterAGap(t *testing.T) {
	rs, err := tagging.ParseRules(configs.Tags, "tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	p, err := Open(t.TempDir(), Options{Location: loc, Rules: rs, Daily: true, OnEvaluate: func(at time.Time, _ []tagging.Tag) {
		got = append(got, at.In(loc).Format(time.DateTime))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, day := range []int{2, 5, 6} { // 3 and 4 March without a reading
		at := time.Date(2026, 3, day, 8, 0, 0, 0, loc)
		if err := p.Add(device.Reading{Device: "f", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1, DeviceTime: at}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"2026-03-02 23:59:59", "2026-03-05 23:59:59"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("daily evaluations at %v, want %v", got, want)
	}
}
