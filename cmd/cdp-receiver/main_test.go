package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/poll"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/transport"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The receiver run by hand takes a batch from hearth's Segment transport with its
// key, prints the event, and refuses another key.
func TestReceiverByHand(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuf
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", addr, "-write-key", "demo"}, &out, &errb) }()
	poll.Until(t, "the receiver to listen", 10*time.Second, func() bool { return strings.Contains(errb.String(), "listening") })
	body, _ := json.Marshal(message.Health{Type: message.TypeHealth, ID: "h-1", Household: "hh", Date: "2026-05-04", Rules: "r"})
	b := transport.Batch{ID: "b", Household: "hh", Messages: []store.Message{{Type: message.TypeHealth, ID: "h-1", At: time.Now(), Body: body}}}
	for _, c := range []struct {
		key string
		ok  bool
	}{{"nope", false}, {"demo", true}} {
		tr, _ := transport.NewSegment(transport.SegmentOptions{Endpoint: "http://" + addr, WriteKey: c.key, Version: "t"})
		errs, _ := tr.Send(ctx, []transport.Batch{b})
		if (errs[0] == nil) != c.ok {
			t.Errorf("key %q: %v", c.key, errs[0])
		}
	}
	poll.Until(t, "the event printed", 10*time.Second, func() bool { return strings.Contains(out.String(), `"messageId":"h-1"`) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errb.String(), "Received:1") || !strings.Contains(errb.String(), "Rejected:1") {
		t.Errorf("final counts: %s", errb.String())
	}
	if err := run(context.Background(), []string{"-listen", addr}, &out, &errb); err == nil {
		t.Error("started without a write key")
	}
}
