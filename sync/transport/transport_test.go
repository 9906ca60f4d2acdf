package transport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/cdptest"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/transport"
	"github.com/hearth-iot/hearth/sync/transport/syncpb"
)

const household = "hhhhhhhhhhhhhhhhhhhhhhhhhh"

func msg(t *testing.T, typ, id string, at time.Time, v any) store.Message {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return store.Message{Type: typ, ID: id, Category: "usage", At: at, Body: body}
}

// One message of each type, as the builder makes them.
func sample(t *testing.T) []store.Message {
	at := time.Date(2026, 5, 4, 22, 0, 0, 0, time.UTC)
	mean, min, max := 4.1, 3.5, 5.0
	return []store.Message{
		msg(t, message.TypeDeviceDay, "day-1", at, message.DeviceDay{Type: message.TypeDeviceDay, ID: "day-1", Household: household,
			Device: "dddddddddddddddddddddddddd", Kind: device.KindFridge, Date: "2026-05-04", Rules: "r1",
			Signals: map[device.Signal]*message.Signal{
				device.SignalDoor:        {N: 40, Sessions: 20, OnSeconds: 610, LongestSec: 95, Over60s: 3, ByPart: &[4]uint32{1, 7, 5, 7}},
				device.SignalTemperature: {N: 288, Min: &min, Max: &max, Mean: &mean}}}),
		msg(t, message.TypeTag, "tag-1", at, message.TagChange{Type: message.TypeTag, ID: "tag-1", Household: household,
			Tag: "routine.breakfast_at_home", Score: 0.71, Confidence: 0.8, Active: true, Status: "ok", Reason: "activated", At: at,
			Evidence: map[string]float64{"breakfast_days": 20, "days": 28}, Rules: "r1"}),
		msg(t, message.TypeProfile, "prof-1", at, message.Profile{Type: message.TypeProfile, ID: "prof-1", Household: household, At: at,
			ActiveTags: []string{"routine.breakfast_at_home"}, Scores: map[string]float64{"routine.breakfast_at_home": 0.71}, Rules: "r1"}),
		msg(t, message.TypeHealth, "health-1", at, message.Health{Type: message.TypeHealth, ID: "health-1", Household: household,
			Date: "2026-05-04", At: at, Rules: "r1", Store: store.Health{Committed: 1000, Evicted: map[string]uint64{"age": 3}}}),
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {" 120 ", 2 * time.Minute}, {"0", 0}, {"-5", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := transport.RetryAfter(c.v, now); got != c.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", c.v, got, c.want)
		}
	}
}

// Every answer has its class: 2xx delivered; 408, 429, 5xx and the network retried
// (with the Retry-After); 401/403 auth; 400, 404, 413, 422 rejected.
func TestAnswerClasses(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	tr, err := transport.NewSegment(transport.SegmentOptions{Endpoint: url, WriteKey: "k", Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b := transport.Batch{ID: "b", Household: household, Messages: sample(t)}
	for _, c := range []struct {
		status int
		ra     string
		want   transport.Class
	}{
		{400, "", transport.Reject}, {401, "", transport.Auth}, {403, "", transport.Auth}, {404, "", transport.Reject},
		{408, "", transport.Retry}, {413, "", transport.Reject}, {422, "", transport.Reject}, {429, "30", transport.Retry},
		{500, "", transport.Retry}, {502, "", transport.Retry}, {503, "2", transport.Retry},
	} {
		rcv.FailNext(1, c.status, c.ra)
		errs, _ := tr.Send(context.Background(), []transport.Batch{b})
		cls, ra := transport.ClassOf(errs[0])
		if errs[0] == nil || cls != c.want {
			t.Errorf("HTTP %d: %v (class %v), want class %v", c.status, errs[0], cls, c.want)
		}
		if c.ra != "" && ra == 0 {
			t.Errorf("HTTP %d: Retry-After %s not kept", c.status, c.ra)
		}
	}
	if errs, _ := tr.Send(context.Background(), []transport.Batch{b}); errs[0] != nil {
		t.Errorf("2xx: %v", errs[0])
	}
	// The network: nothing listens.
	dead, _ := transport.NewSegment(transport.SegmentOptions{Endpoint: "http://127.0.0.1:1", WriteKey: "k", Version: "t"})
	errs, _ := dead.Send(context.Background(), []transport.Batch{b})
	if cls, _ := transport.ClassOf(errs[0]); errs[0] == nil || cls != transport.Retry {
		t.Errorf("connection refused: %v", errs[0])
	}
}

// A Segment batch of every message type passes the receiver's checks (auth, limits,
// fields), with the documented calls and names.
func TestSegmentMapping(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{WriteKey: "k"})
	url := rcv.Start(t)
	tr, _ := transport.NewSegment(transport.SegmentOptions{Endpoint: url, WriteKey: "k", Version: "1.2.3"})
	errs, wire := tr.Send(context.Background(), []transport.Batch{{ID: "b", Household: household, Messages: sample(t)}})
	if errs[0] != nil {
		t.Fatalf("%v; receiver: %v", errs[0], rcv.Problems())
	}
	evs := rcv.Events()
	if len(evs) != 4 || wire == 0 {
		t.Fatalf("%d events, %d bytes", len(evs), wire)
	}
	want := []struct{ typ, event string }{{"track", transport.EventDeviceDay}, {"track", transport.EventTag}, {"identify", ""}, {"track", transport.EventHealth}}
	for i, e := range evs {
		if e.Type != want[i].typ || e.Event != want[i].event || e.AnonymousID != household || e.Context.Library.Version != "1.2.3" {
			t.Errorf("event %d: %s %q anon %s lib %+v", i, e.Type, e.Event, e.AnonymousID, e.Context.Library)
		}
		if !e.Timestamp.Equal(time.Date(2026, 5, 4, 22, 0, 0, 0, time.UTC)) {
			t.Errorf("event %d timestamp %s", i, e.Timestamp)
		}
	}
	if sig := evs[0].Properties["signals"].(map[string]any)["door"].(map[string]any); sig["sessions"] != json.Number("20") {
		t.Errorf("door signal %v", sig)
	}
	if tags := evs[2].Traits["active_tags"].([]any); len(tags) != 1 || tags[0] != "routine.breakfast_at_home" {
		t.Errorf("identify traits %v", evs[2].Traits)
	}
	// A wrong key is refused by the receiver and classed auth.
	bad, _ := transport.NewSegment(transport.SegmentOptions{Endpoint: url, WriteKey: "nope", Version: "t"})
	errs, _ = bad.Send(context.Background(), []transport.Batch{{ID: "b", Household: household, Messages: sample(t)}})
	if cls, _ := transport.ClassOf(errs[0]); cls != transport.Auth {
		t.Errorf("wrong key: %v", errs[0])
	}
}

// The native body is zstd protobuf that decodes to the same numbers; the receiver
// checks the Idempotency-Key.
func TestNativeEncoding(t *testing.T) {
	rcv := cdptest.New(cdptest.Options{})
	url := rcv.Start(t)
	tr, err := transport.NewHTTPS(transport.HTTPSOptions{URL: url + "/v1/hearth", Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b := transport.Batch{ID: "batch-1", Household: household, Messages: sample(t)}
	if errs, _ := tr.Send(context.Background(), []transport.Batch{b}); errs[0] != nil {
		t.Fatalf("%v; receiver: %v", errs[0], rcv.Problems())
	}
	body, err := tr.Encode(b, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(nil)
	raw, err := zr.DecodeAll(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pb syncpb.Batch
	if err := proto.Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	door := pb.Messages[0].GetDeviceDay().Signals["door"]
	if pb.Id != "batch-1" || len(pb.Messages) != 4 || door.Sessions != 20 || door.ByPart[1] != 7 ||
		pb.Messages[1].GetTag().Confidence != 0.8 || pb.Messages[3].GetHealth().Evicted["age"] != 3 || pb.Messages[0].RulesVersion != "r1" {
		t.Errorf("decoded %v", &pb)
	}
	if n := len(rcv.Events()); n != 4 {
		t.Errorf("receiver took %d messages", n)
	}
}
