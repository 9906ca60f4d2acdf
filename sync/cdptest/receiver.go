// Package cdptest is a cloud receiver for hearth's tests, benchmarks and by-hand
// checks (cmd/cdp-receiver): a Segment-spec HTTP endpoint (POST /v1/batch) and a
// native one (POST /v1/hearth: zstd protobuf) that enforce what real CDPs enforce —
// Basic auth with the write key, 32 KB per event, 500 KB and 500 events per batch,
// messageId ≤ 100 characters, the fields of every event — de-duplicate by messageId
// as Segment and RudderStack do, and count what they received; plus faults to inject
// (an HTTP status for the next requests, a poisoned message answered 400, a receiver
// that is down) and a TCP proxy that resets, delays and black-holes connections
// (proxy.go). It is not used by hearth itself.
package cdptest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/sync/transport/syncpb"
)

// Segment's limits, as the receiver enforces them.
const (
	MaxEventBytes   = 32 << 10
	MaxBatchBytes   = 500 << 10
	MaxBatchEvents  = 500
	MaxMessageIDLen = 100
)

// Event is one event received and accepted (the first copy of its messageId).
type Event struct {
	Type        string         `json:"type"`
	Event       string         `json:"event,omitempty"`
	AnonymousID string         `json:"anonymousId"`
	MessageID   string         `json:"messageId"`
	Timestamp   time.Time      `json:"timestamp"`
	SentAt      time.Time      `json:"sentAt"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Context     struct {
		Library struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"library"`
	} `json:"context"`
	Native *syncpb.Message `json:"-"` // the message, when it came on the native endpoint
}

// Counts is what the receiver has seen.
type Counts struct {
	Requests   int `json:"requests"`   // every POST that reached the handler
	Accepted   int `json:"accepted"`   // requests answered 200
	Received   int `json:"received"`   // events in accepted requests, duplicates included
	Duplicates int `json:"duplicates"` // of those, events whose messageId was already received
	Unique     int `json:"unique"`     // Received - Duplicates: what remains after de-duplication
	Rejected   int `json:"rejected"`   // requests refused for what they carried (400, 401, 413)
	Injected   int `json:"injected"`   // requests answered with an injected fault
}

// Options configure a Receiver.
type Options struct {
	WriteKey string // the Segment source's write key (Basic auth user); also the native endpoint's bearer token
	// RulesVersion: every event must carry properties.rules_version (traits for
	// identify) — true by default: set SkipRulesVersion to not check it.
	SkipRulesVersion bool
	Now              func() time.Time // when a request arrived, for Rate (default time.Now)
}

// Receiver is an http.Handler; Start serves it on 127.0.0.1.
type Receiver struct {
	o  Options
	zr *zstd.Decoder

	mu       sync.Mutex
	key      string
	counts   Counts
	seen     map[string]bool
	events   []Event
	arrivals []time.Time
	faults   []fault
	poison   map[string]bool
	down     bool
	problems []string // why requests were rejected
}

type fault struct {
	status     int
	retryAfter string
}

// New returns a Receiver.
func New(o Options) *Receiver {
	if o.Now == nil {
		o.Now = time.Now
	}
	zr, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	return &Receiver{o: o, zr: zr, key: o.WriteKey, seen: map[string]bool{}, poison: map[string]bool{}}
}

// SetWriteKey changes the key the receiver accepts.
func (r *Receiver) SetWriteKey(k string) { r.mu.Lock(); r.key = k; r.mu.Unlock() }

// FailNext answers the next n requests with status (and a Retry-After header when
// retryAfter is not empty), without looking at them.
func (r *Receiver) FailNext(n, status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range n {
		r.faults = append(r.faults, fault{status, retryAfter})
	}
}

// Poison makes every batch that carries messageID answered 400, as a CDP refuses an
// event it cannot take.
func (r *Receiver) Poison(messageID string) { r.mu.Lock(); r.poison[messageID] = true; r.mu.Unlock() }

// SetDown makes the receiver drop every connection without an answer (a dead
// backend), or serve again.
func (r *Receiver) SetDown(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }

// Counts returns the counts so far.
func (r *Receiver) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	c.Unique = c.Received - c.Duplicates
	return c
}

// Erasures returns the accepted erasure requests: Segment "delete" calls and native
// Erasure messages, as Events.
func (r *Receiver) Erasures() []Event {
	var out []Event
	for _, e := range r.Events() {
		if e.Type == "delete" || e.Native != nil && e.Native.GetErasure() != nil {
			out = append(out, e)
		}
	}
	return out
}

// Events returns the accepted events, de-duplicated, in the order they arrived.
func (r *Receiver) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Problems returns why requests were rejected.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// Arrivals returns when each request that reached the handler arrived (Options.Now).
func (r *Receiver) Arrivals() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.arrivals...)
}

// Start serves r on 127.0.0.1 (port 0) until the test ends and returns its URL.
func (r *Receiver) Start(t interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// ServeHTTP implements http.Handler.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				c.Close()
				return
			}
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if req.Method != http.MethodPost {
		r.mu.Unlock()
		if req.Method == http.MethodGet && req.URL.Path == "/counts" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(r.Counts())
			return
		}
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	r.counts.Requests++
	r.arrivals = append(r.arrivals, r.o.Now())
	if len(r.faults) > 0 {
		f := r.faults[0]
		r.faults = r.faults[1:]
		r.counts.Injected++
		r.mu.Unlock()
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		http.Error(w, "injected fault", f.status)
		return
	}
	r.mu.Unlock()
	switch {
	case req.Method == http.MethodPost && req.URL.Path == "/v1/batch":
		r.segment(w, req)
	case req.Method == http.MethodPost && req.URL.Path == "/v1/hearth":
		r.native(w, req)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func (r *Receiver) reject(w http.ResponseWriter, status int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.mu.Lock()
	r.counts.Rejected++
	if len(r.problems) < 1000 {
		r.problems = append(r.problems, msg)
	}
	r.mu.Unlock()
	http.Error(w, msg, status)
}

// body reads a request body, decompressed as Content-Encoding says, at most limit
// bytes once decompressed.
func (r *Receiver) body(req *http.Request, limit int) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(req.Body, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	var out []byte
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "":
		out = raw
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if out, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1)); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	case "zstd":
		if out, err = r.zr.DecodeAll(raw, nil); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown Content-Encoding %q", enc)
	}
	if len(out) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

var errTooLarge = errors.New("too large")

func (r *Receiver) segment(w http.ResponseWriter, req *http.Request) {
	user, pass, ok := req.BasicAuth()
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	if !ok || user != key || pass != "" {
		r.reject(w, http.StatusUnauthorized, "invalid write key")
		return
	}
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		r.reject(w, http.StatusBadRequest, "Content-Type %q, want application/json", ct)
		return
	}
	raw, err := r.body(req, MaxBatchBytes)
	if errors.Is(err, errTooLarge) {
		r.reject(w, http.StatusRequestEntityTooLarge, "batch over %d bytes", MaxBatchBytes)
		return
	}
	if err != nil {
		r.reject(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	var batch struct {
		Batch  []json.RawMessage `json:"batch"`
		SentAt time.Time         `json:"sentAt"`
	}
	if err := json.Unmarshal(raw, &batch); err != nil {
		r.reject(w, http.StatusBadRequest, "batch JSON: %v", err)
		return
	}
	if len(batch.Batch) == 0 || len(batch.Batch) > MaxBatchEvents {
		r.reject(w, http.StatusBadRequest, "%d events in the batch, want 1..%d", len(batch.Batch), MaxBatchEvents)
		return
	}
	events := make([]Event, 0, len(batch.Batch))
	for i, ev := range batch.Batch {
		if len(ev) > MaxEventBytes {
			r.reject(w, http.StatusBadRequest, "event %d: %d bytes, over %d", i, len(ev), MaxEventBytes)
			return
		}
		var e Event
		dec := json.NewDecoder(bytes.NewReader(ev))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil {
			r.reject(w, http.StatusBadRequest, "event %d: %v", i, err)
			return
		}
		if err := r.validate(&e); err != nil {
			r.reject(w, http.StatusBadRequest, "event %d (%s): %v", i, e.MessageID, err)
			return
		}
		events = append(events, e)
	}
	if r.poisoned(events) {
		r.reject(w, http.StatusBadRequest, "a poisoned message")
		return
	}
	r.accept(events)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"success":true}`))
}

// validate checks the fields a Segment-spec receiver requires of an event from hearth.
func (r *Receiver) validate(e *Event) error {
	switch {
	case e.Type != "track" && e.Type != "identify" && e.Type != "delete":
		return fmt.Errorf("type %q", e.Type)
	case e.Type == "delete" && e.Properties["scope"] != "device" && e.Properties["scope"] != "household":
		return fmt.Errorf("delete with scope %v, want device or household", e.Properties["scope"])
	case e.Type == "track" && e.Event == "":
		return errors.New("track without event")
	case e.AnonymousID == "":
		return errors.New("no anonymousId")
	case e.MessageID == "" || len(e.MessageID) > MaxMessageIDLen:
		return fmt.Errorf("messageId %q: want 1..%d characters", e.MessageID, MaxMessageIDLen)
	case e.Timestamp.IsZero() || e.SentAt.IsZero():
		return errors.New("no timestamp or sentAt")
	case e.Context.Library.Name != "hearth" || e.Context.Library.Version == "":
		return fmt.Errorf("context.library %+v", e.Context.Library)
	case e.Type == "identify" && len(e.Traits) == 0:
		return errors.New("identify without traits")
	case e.Type == "track" && len(e.Properties) == 0:
		return errors.New("track without properties")
	}
	if !r.o.SkipRulesVersion && e.Type != "delete" {
		f := e.Properties
		if e.Type == "identify" {
			f = e.Traits
		}
		if v, _ := f["rules_version"].(string); v == "" {
			return errors.New("no rules_version")
		}
	}
	for _, k := range []string{"household", "device_id"} {
		if _, bad := e.Properties[k]; bad {
			return fmt.Errorf("properties.%s: an identifier the event should not carry", k)
		}
	}
	return nil
}

func (r *Receiver) poisoned(events []Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		if r.poison[e.MessageID] {
			return true
		}
	}
	return false
}

func (r *Receiver) accept(events []Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts.Accepted++
	for _, e := range events {
		r.counts.Received++
		if r.seen[e.MessageID] {
			r.counts.Duplicates++
			continue
		}
		r.seen[e.MessageID] = true
		r.events = append(r.events, e)
	}
}

func (r *Receiver) native(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	if key != "" && req.Header.Get("Authorization") != "Bearer "+key {
		r.reject(w, http.StatusUnauthorized, "invalid token")
		return
	}
	raw, err := r.body(req, MaxBatchBytes*4)
	if err != nil {
		r.reject(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	var b syncpb.Batch
	if err := proto.Unmarshal(raw, &b); err != nil {
		r.reject(w, http.StatusBadRequest, "protobuf: %v", err)
		return
	}
	if b.Id == "" || req.Header.Get("Idempotency-Key") != b.Id {
		r.reject(w, http.StatusBadRequest, "Idempotency-Key %q, batch id %q", req.Header.Get("Idempotency-Key"), b.Id)
		return
	}
	events, err := NativeEvents(&b)
	if err != nil {
		r.reject(w, http.StatusBadRequest, "%v", err)
		return
	}
	if r.poisoned(events) {
		r.reject(w, http.StatusBadRequest, "a poisoned message")
		return
	}
	r.accept(events)
	w.WriteHeader(http.StatusOK)
}

// NativeEvents validates a native batch and returns its messages as Events
// (MessageID, AnonymousID, Timestamp, SentAt, Native).
func NativeEvents(b *syncpb.Batch) ([]Event, error) {
	if b.Household == "" || b.Library != "hearth" || b.LibraryVersion == "" || b.SentAtMs == 0 {
		return nil, fmt.Errorf("batch %s: household, library or sent_at missing", b.Id)
	}
	out := make([]Event, 0, len(b.Messages))
	for i, m := range b.Messages {
		if m.Id == "" || len(m.Id) > MaxMessageIDLen || m.AtMs == 0 || m.Body == nil || m.RulesVersion == "" {
			return nil, fmt.Errorf("message %d (%q): id, at, rules_version or body missing", i, m.Id)
		}
		if proto.Size(m) > MaxEventBytes {
			return nil, fmt.Errorf("message %d: over %d bytes", i, MaxEventBytes)
		}
		out = append(out, Event{Type: "native", MessageID: m.Id, AnonymousID: b.Household, Timestamp: time.UnixMilli(m.AtMs),
			SentAt: time.UnixMilli(b.SentAtMs), Native: m})
	}
	return out, nil
}
