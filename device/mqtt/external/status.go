package external

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
)

// The states of the connection to the external broker, as Status reports them.
const (
	StateConnecting   = "connecting"   // an attempt is under way (also before the first), or connected and waiting for the SUBACK
	StateConnected    = "connected"    // connected and subscribed: receiving
	StateDisconnected = "disconnected" // the last attempt failed or the connection was lost; waiting to try again
	StateStopped      = "stopped"      // Run has returned
)

// Status is what a person needs to see about the external broker: whether
// hearth is connected, why not, and which topics have problems.
type Status struct {
	URL            string    `json:"url"`
	State          string    `json:"state"`                    // one of the State constants
	Since          time.Time `json:"since"`                    // when it entered State
	LastError      string    `json:"last_error,omitempty"`     // the last connection problem
	LastErrorAt    time.Time `json:"last_error_at,omitzero"`   // and when
	FailedConnects uint64    `json:"failed_connects"`          // connection attempts that failed
	Messages       uint64    `json:"messages"`                 // messages received
	LastMessageAt  time.Time `json:"last_message_at,omitzero"` // when the last one came
	// StoredBytes is the payload bytes of the messages whose readings were stored.
	StoredBytes uint64 `json:"stored_bytes"`
	// Topics are the topics with problems or warnings, most recent first.
	Topics []TopicStatus `json:"topics,omitempty"`
}

// TopicStatus is what went wrong on one topic (or on all topics beyond
// MaxTopicLabels, under the name "other").
type TopicStatus struct {
	Topic string `json:"topic"`
	// Problems counts the messages acknowledged without (all of) their readings
	// stored, by reason: malformed, rejected, unknown_device, unknown_topic, limit,
	// field (one field could not be read; the rest was stored).
	Problems  map[string]uint64 `json:"problems,omitempty"`
	LastError string            `json:"last_error,omitempty"`
	// QoS0 counts messages with readings that arrived at QoS 0: their publisher
	// sends at QoS 0, and what it publishes while hearth is away is lost unless the
	// broker queues QoS 0 messages.
	QoS0   uint64    `json:"qos0,omitempty"`
	LastAt time.Time `json:"last_at"`
}

// Status reports the connection, its last error and the topics with problems.
// Safe for concurrent use.
func (e *Source) Status() Status {
	s := e.conn.status()
	s.URL = e.o.URL
	s.Topics = e.topics.list()
	return s
}

// Ready returns nil while connected to the external broker, else why not.
func (e *Source) Ready() error {
	s := e.conn.status()
	if s.State == StateConnected {
		return nil
	}
	msg := fmt.Sprintf("external broker %s: %s since %s", e.o.URL, s.State, s.Since.UTC().Format(time.RFC3339))
	if s.LastError != "" {
		msg += ": " + s.LastError
	}
	return errors.New(msg)
}

// connState is the connection's state for Status.
type connState struct {
	mu          sync.Mutex
	state       string
	since       time.Time
	lastErr     string
	lastErrAt   time.Time
	failed      uint64
	msgs        uint64
	lastMsg     time.Time
	storedBytes uint64
}

// set enters state and, when err is set, records it as the last error.
func (c *connState) set(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != state {
		c.state, c.since = state, time.Now()
	}
	if err != nil {
		c.lastErr, c.lastErrAt = err.Error(), time.Now()
	}
}

// note records a problem of the connection that does not change its state.
func (c *connState) note(err error) {
	c.set(c.status().State, err)
}

func (c *connState) failedAttempt() {
	c.mu.Lock()
	c.failed++
	c.mu.Unlock()
}

func (c *connState) message(at time.Time) {
	c.mu.Lock()
	c.msgs++
	c.lastMsg = at
	c.mu.Unlock()
}

func (c *connState) committed(payloadBytes int) {
	c.mu.Lock()
	c.storedBytes += uint64(payloadBytes)
	c.mu.Unlock()
}

func (c *connState) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{State: c.state, Since: c.since, LastError: c.lastErr, LastErrorAt: c.lastErrAt, FailedConnects: c.failed,
		Messages: c.msgs, LastMessageAt: c.lastMsg, StoredBytes: c.storedBytes}
}

// otherTopics names, in metrics and Status, the topics beyond the table's bound.
const otherTopics = "other"

// topicTable keeps per-topic problems for at most max topics; the rest are counted
// under otherTopics. Safe for concurrent use.
type topicTable struct {
	mu     sync.Mutex
	max    int
	topics map[string]*TopicStatus
	fields map[string]bool // field labels in use, at most max
}

func newTopicTable(max int) *topicTable {
	return &topicTable{max: max, topics: make(map[string]*TopicStatus), fields: make(map[string]bool)}
}

// entryLocked returns the topic's entry (or the otherTopics one), made if needed;
// the caller holds mu.
func (t *topicTable) entryLocked(topic string) *TopicStatus {
	if ts, ok := t.topics[topic]; ok {
		return ts
	}
	if len(t.topics) >= t.max {
		topic = otherTopics
		if ts, ok := t.topics[topic]; ok {
			return ts
		}
	}
	ts := &TopicStatus{Topic: topic}
	t.topics[topic] = ts
	return ts
}

// problem counts a problem of topic and returns the label it is counted under and
// whether it is the first of its reason there.
func (t *topicTable) problem(reason, topic string, err error, at time.Time) (label string, first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.entryLocked(topic)
	if ts.Problems == nil {
		ts.Problems = map[string]uint64{}
	}
	first = ts.Problems[reason] == 0
	ts.Problems[reason]++
	ts.LastError = conv.Truncate(err.Error(), 256)
	ts.LastAt = at
	return ts.Topic, first
}

// qos0 counts a message with readings that came at QoS 0.
func (t *topicTable) qos0(topic string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.entryLocked(topic)
	ts.QoS0++
	ts.LastAt = at
}

// field returns the label a field is counted under.
func (t *topicTable) field(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fields[name] {
		return name
	}
	if len(t.fields) >= t.max {
		return otherTopics
	}
	t.fields[name] = true
	return name
}

func (t *topicTable) list() []TopicStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TopicStatus, 0, len(t.topics))
	for _, ts := range t.topics {
		c := *ts
		if ts.Problems != nil {
			c.Problems = make(map[string]uint64, len(ts.Problems))
			for k, v := range ts.Problems {
				c.Problems[k] = v
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastAt.Equal(out[j].LastAt) {
			return out[i].LastAt.After(out[j].LastAt)
		}
		return out[i].Topic < out[j].Topic
	})
	return out
}

// problem counts a message acknowledged without (all of) its readings stored. The
// first problem of each reason on a topic is logged as a warning, later ones at
// debug level: the metrics and Status count every one.
func (e *Source) problem(reason, topic string, err error, at time.Time) {
	label, first := e.topics.problem(reason, topic, err, at)
	e.problems.WithLabelValues(reason, label).Inc()
	lvl := e.log.Debug
	if first {
		lvl = e.log.Warn
	}
	lvl("message not stored", "reason", reason, "topic", conv.Truncate(topic, 128), "err", err)
}

// fieldsRefused counts the fields of a message that could not be read.
func (e *Source) fieldsRefused(topic string, fe *mqtt.FieldErrors, at time.Time) {
	for _, f := range fe.Fields {
		e.fields.WithLabelValues(e.topics.field(f.Field)).Inc()
	}
	e.problem("field", topic, fe, at)
}

// logGate tells whether a connection error differs from the last one logged.
type logGate struct {
	mu   sync.Mutex
	last string
}

func (g *logGate) changed(err error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := ""
	if err != nil {
		s = err.Error()
	}
	if s == g.last {
		return false
	}
	g.last = s
	return true
}

func (g *logGate) reset() {
	g.mu.Lock()
	g.last = ""
	g.mu.Unlock()
}
