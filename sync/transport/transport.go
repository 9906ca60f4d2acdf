// Package transport delivers batches of summaries out of the hub: to a local file
// (file), a Segment-spec HTTP endpoint (segment: Segment, RudderStack, Jitsu), a
// maker's own collector (https: protobuf + zstd) or a cloud MQTT broker (mqtt).
//
// A Transport is told what to send and answers per batch; it keeps nothing across
// calls: the outbox (sync/outbox) is the only queue, in the store, and a batch leaves
// it only after its transport said it was acknowledged. A batch may be delivered
// more than once (an acknowledgement lost on the way), so every message carries a
// deterministic id that the receiver de-duplicates on.
//
// # Answers
//
// Send returns one error per batch: nil when the receiver acknowledged it (HTTP 2xx,
// MQTT PUBACK), else an *Error saying what to do: Retry (network errors, 408, 429,
// 5xx: try again later, not before RetryAfter), Reject (400, 413, 422 and other
// refusals: the batch will never be taken; move it aside) or Auth (401, 403: the
// credentials are wrong; pause). Any other error is taken as Retry.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
)

// Batch is what one delivery carries: the same ID and Messages at every attempt.
type Batch struct {
	ID        string
	Household string // pseudonym: the anonymousId of every message
	Messages  []store.Message
	// Set by Send for each batch it put on the wire: the payload exactly as sent,
	// before compression (Segment's JSON, the protobuf, the file's lines), and its
	// bytes on the wire. The audit of what left the home keeps both (sync/outbox).
	Payload []byte
	Wire    int
}

// EndpointHost returns the host (and port) of a URL, or the URL when it has none:
// what the audit names as where a batch went.
func EndpointHost(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

// Limits are what a transport's receiver accepts. The outbox forms batches within
// them; a message bigger than MaxMessageBytes is never sent.
type Limits struct {
	MaxMessages     int // per batch
	MaxBatchBytes   int // per batch, counted as Size counts
	MaxMessageBytes int // per message, counted as Size counts
	// MaxWireBytes is the most a batch may take on the wire, after compression
	// (MQTT: the broker's payload limit); 0: no limit beyond MaxBatchBytes.
	MaxWireBytes int
	Window       int // batches sent at once (in order, each acknowledged on its own)
}

// Transport delivers batches. Implementations are safe for use by one goroutine at
// a time.
type Transport interface {
	Name() string
	Limits() Limits
	// Size is how many bytes m takes in a batch of this transport, uncompressed.
	Size(m store.Message) (int, error)
	// Encode returns b as it goes on the wire at sentAt (compressed).
	Encode(b Batch, sentAt time.Time) ([]byte, error)
	// Send delivers up to Limits().Window batches, in order, and returns one error
	// per batch (nil: acknowledged) and the bytes it put on the wire.
	Send(ctx context.Context, bs []Batch) (errs []error, wire int)
	Close() error
}

// Class says what to do after a failed delivery.
type Class int

const (
	Retry  Class = iota // try again later (network, 408, 429, 5xx)
	Reject              // never: move the batch to the dead letters (400, 413, 422, …)
	Auth                // credentials refused (401, 403): pause delivery
)

func (c Class) String() string {
	switch c {
	case Reject:
		return "rejected"
	case Auth:
		return "auth"
	}
	return "retry"
}

// Error is a failed delivery, classified.
type Error struct {
	Class      Class
	Status     int           // HTTP status (0: none)
	RetryAfter time.Duration // the receiver's Retry-After (0: none)
	Err        error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (HTTP %d): %v", e.Class, e.Status, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf classifies err: its *Error's class, Retry for any other error.
func ClassOf(err error) (Class, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Class, e.RetryAfter
	}
	return Retry, 0
}

// ErrTooLarge is the error for a batch or message over the transport's limits.
var ErrTooLarge = errors.New("over the receiver's size limit")

// httpError classifies an HTTP answer that is not 2xx. now parses an HTTP-date
// Retry-After.
func httpError(resp *http.Response, body []byte, now time.Time) error {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e := &Error{Status: resp.StatusCode, Err: fmt.Errorf("%s: %s", resp.Status, msg)}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Class = Auth
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		e.Class = Retry
		e.RetryAfter = RetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		e.Class = Reject
	}
	return e
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP-date; 0 when it
// is absent, unreadable or in the past.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
