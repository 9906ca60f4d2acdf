package transport

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/message"
)

// Segment's limits (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/):
// 32 KB per event, 500 KB per batch request; RudderStack and Jitsu accept the same.
const (
	SegmentMaxEventBytes = 32 << 10
	SegmentMaxBatchBytes = 500 << 10
	SegmentMaxEvents     = 500
)

// Segment event names (docs/sync.md).
const (
	EventDeviceDay = "Appliance Day Summarized"
	EventTag       = "Usage Tag Changed"
	EventHealth    = "Hub Health Reported"
)

// SegmentOptions configure a Segment transport.
type SegmentOptions struct {
	Endpoint string // base URL; batches go to Endpoint + "/v1/batch"
	// WriteKey is the source's write key (Basic auth user, empty password). When
	// WriteKeyFile is set it is read from there instead, again before every request,
	// so that fixing the file resumes a delivery paused by a 401.
	WriteKey     string
	WriteKeyFile string
	Version      string // hearth's version, for context.library
	Client       *http.Client
	Timeout      time.Duration    // per request (default 30s)
	Now          func() time.Time // sentAt (default time.Now)
}

// Segment posts Segment-spec batches (track and identify calls) as gzip JSON.
type Segment struct {
	o SegmentOptions
}

// DefaultSegmentOptions are the documented defaults of the Segment transport: the
// one place they are written (a zero field of SegmentOptions takes its value here;
// internal/config's sync.segment.* defaults are these).
func DefaultSegmentOptions() SegmentOptions { return SegmentOptions{Timeout: 30 * time.Second} }

// NewSegment returns a Segment transport.
func NewSegment(o SegmentOptions) (*Segment, error) {
	if o.Endpoint == "" {
		return nil, fmt.Errorf("transport: segment: no endpoint")
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultSegmentOptions().Timeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WriteKeyFile == "" && o.WriteKey == "" {
		return nil, fmt.Errorf("transport: segment: no write key")
	}
	return &Segment{o: o}, nil
}

// Name implements Transport.
func (s *Segment) Name() string { return "segment" }

// Limits implements Transport.
func (s *Segment) Limits() Limits {
	return Limits{MaxMessages: SegmentMaxEvents, MaxBatchBytes: SegmentMaxBatchBytes - 1024, MaxMessageBytes: SegmentMaxEventBytes, Window: 1}
}

// SegmentEvent is one call of a Segment batch.
type SegmentEvent struct {
	Type        string         `json:"type"` // track, identify, delete (an erasure request)
	Event       string         `json:"event,omitempty"`
	AnonymousID string         `json:"anonymousId"`
	MessageID   string         `json:"messageId"`
	Timestamp   string         `json:"timestamp"`
	SentAt      string         `json:"sentAt"`
	Properties  map[string]any `json:"properties,omitempty"`
	Traits      map[string]any `json:"traits,omitempty"`
	Context     SegmentContext `json:"context"`
}

// SegmentContext is the context of every event.
type SegmentContext struct {
	Library SegmentLibrary `json:"library"`
}

// SegmentLibrary names the sender.
type SegmentLibrary struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// SegmentBatch is the body of POST /v1/batch.
type SegmentBatch struct {
	Batch   []SegmentEvent `json:"batch"`
	SentAt  string         `json:"sentAt"`
	Context SegmentContext `json:"context"`
}

// stamp formats a time as Segment's examples do, at a fixed length (so that Size
// does not depend on when a batch is sent).
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// SegmentEventOf maps a message to its Segment call (docs/sync.md, "Segment").
func SegmentEventOf(m store.Message, household, version string, sentAt time.Time) (SegmentEvent, error) {
	v, err := message.Decode(m)
	if err != nil {
		return SegmentEvent{}, err
	}
	props, err := properties(m.Body)
	if err != nil {
		return SegmentEvent{}, err
	}
	e := SegmentEvent{Type: "track", AnonymousID: household, MessageID: m.ID, Timestamp: stamp(m.At), SentAt: stamp(sentAt),
		Context: SegmentContext{Library: SegmentLibrary{Name: "hearth", Version: version}}}
	switch x := v.(type) {
	case *message.DeviceDay:
		e.Event = EventDeviceDay
	case *message.TagChange:
		e.Event = EventTag
		delete(props, "at") // it is the timestamp
	case *message.Health:
		e.Event = EventHealth
		delete(props, "at")
	case *message.Erasure:
		// Segment's own form of a deletion as its destinations receive it: a
		// "delete" call, for the pseudonym the data was sent under.
		e.Type = "delete"
		e.AnonymousID = x.Household
		delete(props, "requested_at")
		props["requested_at"] = stamp(x.RequestedAt)
	case *message.Profile:
		e.Type = "identify"
		delete(props, "at")
		e.Traits, props = props, nil
	}
	e.Properties = props
	return e, nil
}

// properties is a message's JSON less what the event itself carries.
func properties(body []byte) (map[string]any, error) {
	var p map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("transport: message body: %w", err)
	}
	delete(p, "type")
	delete(p, "id")
	delete(p, "household")
	return p, nil
}

// Size implements Transport: the bytes of the message's event in the batch JSON.
func (s *Segment) Size(m store.Message) (int, error) {
	e, err := SegmentEventOf(m, strings.Repeat("x", 26), s.o.Version, time.Time{})
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(e)
	return len(b) + 1, err
}

// Body returns the batch's JSON, uncompressed.
func (s *Segment) Body(b Batch, sentAt time.Time) ([]byte, error) {
	sb := SegmentBatch{Batch: make([]SegmentEvent, 0, len(b.Messages)), SentAt: stamp(sentAt),
		Context: SegmentContext{Library: SegmentLibrary{Name: "hearth", Version: s.o.Version}}}
	for _, m := range b.Messages {
		e, err := SegmentEventOf(m, b.Household, s.o.Version, sentAt)
		if err != nil {
			return nil, err
		}
		sb.Batch = append(sb.Batch, e)
	}
	return json.Marshal(sb)
}

// Encode implements Transport: the gzip JSON body.
func (s *Segment) Encode(b Batch, sentAt time.Time) ([]byte, error) {
	_, body, err := s.encode(b, sentAt)
	return body, err
}

// Endpoint is the receiver's host, for the audit.
func (s *Segment) Endpoint() string { return EndpointHost(s.o.Endpoint) }

// encode returns the batch's JSON and its gzip.
func (s *Segment) encode(b Batch, sentAt time.Time) (raw, body []byte, err error) {
	raw, err = s.Body(b, sentAt)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > SegmentMaxBatchBytes {
		return nil, nil, fmt.Errorf("transport: segment: batch of %d bytes: %w", len(raw), ErrTooLarge)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(raw); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return raw, buf.Bytes(), nil
}

func (s *Segment) key() (string, error) {
	if s.o.WriteKeyFile == "" {
		return s.o.WriteKey, nil
	}
	b, err := os.ReadFile(s.o.WriteKeyFile)
	if err != nil {
		return "", fmt.Errorf("transport: segment: write_key_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Send implements Transport: one POST per batch.
func (s *Segment) Send(ctx context.Context, bs []Batch) ([]error, int) {
	errs := make([]error, len(bs))
	wire := 0
	for i, b := range bs {
		raw, body, err := s.encode(b, s.o.Now())
		if err != nil {
			errs[i] = &Error{Class: Reject, Err: err}
			continue
		}
		bs[i].Payload, bs[i].Wire = raw, len(body)
		key, err := s.key()
		if err != nil {
			errs[i] = &Error{Class: Auth, Err: err}
			continue
		}
		wire += len(body)
		errs[i] = post(ctx, s.o.Client, s.o.Timeout, s.o.Endpoint+"/v1/batch", body, s.o.Now, func(h http.Header) {
			h.Set("Content-Type", "application/json")
			h.Set("Content-Encoding", "gzip")
			h.Set("User-Agent", "hearth/"+s.o.Version)
		}, func(r *http.Request) { r.SetBasicAuth(key, "") })
	}
	return errs, wire
}

// Close implements Transport.
func (s *Segment) Close() error { s.o.Client.CloseIdleConnections(); return nil }

// post sends one request and classifies the answer.
func post(ctx context.Context, c *http.Client, timeout time.Duration, url string, body []byte, now func() time.Time,
	headers func(http.Header), auth func(*http.Request)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &Error{Class: Reject, Err: err}
	}
	headers(req.Header)
	if auth != nil {
		auth(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return &Error{Class: Retry, Err: err}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return httpError(resp, msg, now())
}
