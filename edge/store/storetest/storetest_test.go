package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store/storetest"
)

func TestOpenTakesReadings(t *testing.T) {
	s := storetest.Open(t, nil)
	r := device.Reading{Device: "k1", Kind: device.KindKettle, Signal: device.SignalPower, Value: 2000, HubTime: time.Unix(1750000000, 0)}
	if err := device.Commit(context.Background(), s, []device.Reading{r}); err != nil {
		t.Fatal(err)
	}
	if s.LastSeq() != 1 {
		t.Fatalf("LastSeq = %d, want 1", s.LastSeq())
	}
}
