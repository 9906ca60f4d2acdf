package external

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// Options configure a Source.
type Options struct {
	URL      string // tcp://host:1883, ssl://host:8883 (mqtt:// and mqtts:// are accepted too)
	ClientID string // the persistent session's key on the broker: keep it stable
	Username string
	Password string
	TLS      *tls.Config // for ssl://; nil: system roots
	// Topics are the filters subscribed to, at QoS 1.
	Topics []string
	// MaxExtraSubscriptions bounds the topics Subscribe adds beyond Topics (default 256).
	MaxExtraSubscriptions int
	// Handler turns messages into readings: an mqtt.Adapters with the learners (Home
	// Assistant discovery, Homie attributes) and a Router of the adapters.
	Handler mqtt.Handler
	// MaxInflight bounds the messages received but not yet committed and
	// acknowledged (default 256).
	MaxInflight int
	// ReconnectMax is the longest wait between connection attempts (default 1m).
	ReconnectMax time.Duration
	// Retryable reports whether a refusal by the sink may pass later (a full store,
	// intake stopped, the store closing): the message is then left unacknowledged and
	// the broker sends it again after a reconnect. Any other refusal is final (a
	// reading the sink will never take, such as a timestamp in the year 2201): the
	// message is acknowledged, counted as "rejected" and reported for its topic, so
	// that it cannot hold up what follows it. nil: every refusal is retryable.
	Retryable func(error) bool
	// Latest, when set, returns the latest stored reading of each device, signal and
	// label, as far back as it looks; it is called once, when the first retained
	// message arrives. With it, a retained message becomes a reading only when it is
	// new (see "Retained messages" on Source); without it every retained message
	// is stored.
	Latest func() ([]device.Reading, error)
	// MaxTopicLabels bounds the topics Source tracks one by one (in
	// hearth_mqtt_external_problems_total's topic label and in Status): topics
	// beyond it are counted together as "other" (default 64).
	MaxTopicLabels int
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Source subscribes to a broker the household already runs (mosquitto with
// Zigbee2MQTT, say) and hands what its devices publish to a sink.
//
// # Delivery
//
// The session is persistent (clean session off) and every subscription is QoS 1, so
// the broker keeps what is published at QoS 1 while hearth is away (what is published
// at QoS 0 only if the broker queues QoS 0 messages: mosquitto's queue_qos0_messages).
// A message is acknowledged (PUBACK) only after the sink reports its readings
// committed: if hearth stops before that, the broker sends it again on the next
// connection, and the store de-duplicates what carries a boot id and sequence.
//
// A message that can never be stored is acknowledged and counted, by reason and by
// topic, so that it cannot hold up the feed: one that cannot be decoded, one whose
// topic no mapping knows, and one whose readings the sink refuses for good (see
// Retryable). Only a refusal that may pass (a full store) leaves a message
// unacknowledged: the connection is then closed and opened again after a backoff,
// which makes the broker send it again.
//
// # Order
//
// Messages are handled one at a time in the order the broker delivered them, handed
// to the sink in that order, and acknowledged in that order (as MQTT requires), while
// up to MaxInflight of them await their commit: the store's group commit takes many
// at once, and readings of one device are stored in the order they were published.
// After a refusal that may pass, nothing after the refused message is acknowledged on
// that connection.
//
// # Retained messages
//
// A broker sends its retained message of a topic again on every subscription, so on
// every start and reconnect. With Latest set, the readings of a retained message are
// compared with the latest reading of the same device, signal and label that the
// store holds or that this source handed to it: a reading whose device time is not
// after that one's, or, without device times, whose value and unit are the same, is
// a repeat and not stored (counted as "retained_repeat" when the whole message is).
// A retained value that changed while hearth was away is stored, stamped with the
// time hearth received it unless the device sent its own.
//
// # Connection
//
// Connection attempts back off from 1s to ReconnectMax with jitter; each failure is
// counted, logged (at warning level when the error changes, else at debug level) and
// shown by Status with its error. Subscriptions are renewed on every (re)connect,
// and messages the broker resends before that are handled too.
//
// # Subscriptions added at run time
//
// Subscribe adds topics (the state topic of a Home Assistant entity accepted while
// hearth runs, say) to those of the options. They are remembered for the life of the
// Source and subscribed to again on every (re)connect with the configured filters:
// a broker restarted without persistence, or a session it expired, has forgotten
// them. Unsubscribe removes one again.
type Source struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	extra  []string        // added by Subscribe, in order
	added  map[string]bool // the same, as a set
	client paho.Client     // the current connection's client; nil between connections

	conn    connState    // the connection, for Status (status.go)
	topics  *topicTable  // per-topic problems and warnings (status.go)
	retain  *retainCache // latest values, for retained messages (retained.go)
	logGate logGate

	msgs     *prometheus.CounterVec
	connects *prometheus.CounterVec
	problems *prometheus.CounterVec
	fields   *prometheus.CounterVec
	set      *metricset.Set
}

// Results counted by hearth_mqtt_external_messages_total.
var externalResults = []string{"committed", "ignored", "refused", "rejected", "malformed", "unknown_device", "unknown_topic",
	"limit", "retained_repeat"}

// New checks o and returns the source.
// DefaultOptions are the documented defaults: the one place they are written
// (internal/config's mqtt.external.* defaults are these).
func DefaultOptions() Options {
	return Options{ClientID: mqtt.DefaultExternalClientID, MaxInflight: mqtt.DefaultExternalMaxInflight,
		MaxExtraSubscriptions: mqtt.DefaultExternalMaxExtraSubscriptions, ReconnectMax: mqtt.DefaultExternalReconnectMax,
		MaxTopicLabels: mqtt.DefaultExternalMaxTopicLabels}
}

func New(o Options) (*Source, error) {
	if o.URL == "" {
		return nil, errors.New("mqtt external: no url")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt external: url %q: %w", o.URL, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		u.Scheme = "tcp"
	case "ssl", "tls", "mqtts":
		u.Scheme = "ssl"
	default:
		return nil, fmt.Errorf("mqtt external: url %q: scheme %q is not tcp, ssl, mqtt or mqtts", o.URL, u.Scheme)
	}
	o.URL = u.String()
	if o.ClientID == "" {
		return nil, errors.New("mqtt external: no client id: a persistent session needs a stable one")
	}
	if len(o.Topics) == 0 {
		return nil, errors.New("mqtt external: no topics")
	}
	if o.Handler == nil {
		return nil, errors.New("mqtt external: no handler")
	}
	d := DefaultOptions()
	if o.MaxInflight <= 0 {
		o.MaxInflight = d.MaxInflight
	}
	if o.MaxExtraSubscriptions <= 0 {
		o.MaxExtraSubscriptions = d.MaxExtraSubscriptions
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = d.ReconnectMax
	}
	if o.MaxTopicLabels <= 0 {
		o.MaxTopicLabels = d.MaxTopicLabels
	}
	if o.Retryable == nil {
		o.Retryable = func(error) bool { return true }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Source{o: o, log: o.Logger.With("component", "mqtt.external", "broker", u.Host), added: make(map[string]bool),
		topics: newTopicTable(o.MaxTopicLabels), retain: newRetainCache(o.Latest),
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_messages_total",
			Help: "Messages from the external broker, by result: committed, ignored (nothing to store), refused (by the store, for now; sent again), rejected (by ingest, for good; acknowledged), malformed, unknown_device, unknown_topic, limit, retained_repeat (a retained value already stored)."},
			[]string{"result"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_connects_total",
			Help: "Connections to the external broker, by result: ok, failed (an attempt: nothing listens, wrong password, TLS), lost (after being up)."}, []string{"result"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_problems_total",
			Help: "Messages from the external broker acknowledged without (all of) their readings stored, by reason (malformed, rejected, unknown_device, unknown_topic, limit, field) and topic; at most mqtt.external.max_topic_labels topics, the rest as \"other\"."},
			[]string{"reason", "topic"}),
		fields: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_fields_refused_total",
			Help: "Fields of external-broker messages that could not be read (the rest of the message was stored), by field; at most mqtt.external.max_topic_labels fields, the rest as \"other\"."},
			[]string{"field"}),
	}
	e.conn.state, e.conn.since = StateConnecting, time.Now()
	for _, r := range externalResults {
		e.msgs.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed", "lost"} {
		e.connects.WithLabelValues(r)
	}
	added := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_mqtt_external_added_topics",
		Help: "Topics subscribed to beyond the configured filters (accepted Home Assistant entities' state topics); at most max_extra_subscriptions."},
		func() float64 { e.mu.Lock(); defer e.mu.Unlock(); return float64(len(e.extra)) })
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_mqtt_external_connected",
		Help: "1 while connected to the external broker, else 0."},
		func() float64 {
			if e.Status().State == StateConnected {
				return 1
			}
			return 0
		})
	if e.set, err = metricset.Register(o.Registerer, e.msgs, e.connects, e.problems, e.fields, added, connected); err != nil {
		return nil, fmt.Errorf("mqtt external: metrics: %w", err)
	}
	return e, nil
}

// Name implements device.Source.
func (e *Source) Name() string { return "mqtt external " + e.o.URL }

// Unregister removes the metrics from the registerer given in the options.
func (e *Source) Unregister() { e.set.Unregister() }

// Run implements device.Source: it stays subscribed until ctx ends.
func (e *Source) Run(ctx context.Context, sink device.Sink) error {
	backoff := time.Second
	for {
		up, err := e.connection(ctx, sink)
		if ctx.Err() != nil {
			e.conn.set(StateStopped, nil)
			return nil
		}
		if up >= time.Minute {
			backoff = time.Second // it was up for a while: this is a new problem
		}
		e.conn.set(StateDisconnected, err)
		wait := jitter(backoff)
		switch {
		case errors.Is(err, errRefused):
			e.log.Warn("store refused readings: reconnecting later so the broker sends them again", "err", err, "after", wait.Round(time.Millisecond))
		case up > 0:
			e.log.Warn("connection to external broker lost; reconnecting", "err", err, "after", wait.Round(time.Millisecond))
		default:
			e.connects.WithLabelValues("failed").Inc()
			e.conn.failedAttempt()
			if e.logGate.changed(err) {
				e.log.Warn("cannot connect to external broker; retrying", "err", err, "after", wait.Round(time.Millisecond))
			} else {
				e.log.Debug("cannot connect to external broker; retrying", "err", err, "after", wait.Round(time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
			e.conn.set(StateStopped, nil)
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, e.o.ReconnectMax)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// errRefused wraps a sink's refusal that may pass: it ends a connection.
var errRefused = errors.New("store refused readings")

// connectTimeout bounds one connection attempt.
const connectTimeout = 10 * time.Second

// connection makes one connection and serves it until ctx ends, the connection is
// lost or the sink refuses readings for now. up is how long it was connected (0:
// the attempt failed, err says why).
func (e *Source) connection(ctx context.Context, sink device.Sink) (up time.Duration, err error) {
	e.conn.set(StateConnecting, nil)
	p := newPipeline(e, sink)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(e.o.URL).SetClientID(e.o.ClientID).
		SetUsername(e.o.Username).SetPassword(e.o.Password).
		// Order matters: the handler runs for one message at a time, in the order
		// received, and returns once the message is handed to the sink (the
		// pipeline acknowledges it after the commit, in order).
		SetCleanSession(false).SetAutoAckDisabled(true).SetOrderMatters(true).
		SetResumeSubs(false).
		// One client per connection: Run reconnects, so that every failed attempt
		// is seen (paho's own retries report none).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(connectTimeout).
		SetKeepAlive(30 * time.Second).SetDefaultPublishHandler(p.handle).
		SetOnConnectHandler(func(c paho.Client) {
			// Every time, with the topics added so far: a new session (broker restarted,
			// session expired) has none of them. A topic Subscribe adds after this
			// snapshot, it subscribes itself: the connection is open by now.
			subs, added := e.subscriptions()
			e.log.Info("connected to external broker; subscribing", "topics", strings.Join(e.o.Topics, " "), "added_topics", added)
			tok := c.SubscribeMultiple(subs, nil) // nil: the default handler above
			go func() {
				if !tok.WaitTimeout(30 * time.Second) {
					return
				}
				switch refused := refusedTopics(tok); {
				case tok.Error() != nil:
					e.log.Error("subscribe failed", "err", tok.Error())
				case len(refused) > 0:
					e.log.Error("the broker refused subscriptions (its ACL for this client?)", "topics", strings.Join(refused, " "))
					e.conn.note(fmt.Errorf("the broker refused the subscription to %s (its ACL for this client?)", strings.Join(refused, " ")))
					fallthrough
				default:
					if c.IsConnectionOpen() {
						e.conn.set(StateConnected, nil) // subscribed: receiving
					}
				}
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if e.o.TLS != nil {
		opts.SetTLSConfig(e.o.TLS)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// paho gives up within connectTimeout; the client is dropped.
		go func() { <-tok.Done(); c.Disconnect(0) }()
		return 0, nil
	}
	if err := tok.Error(); err != nil {
		return 0, connectError(err)
	}
	connected := time.Now()
	e.connects.WithLabelValues("ok").Inc()
	e.logGate.reset()
	e.setClient(c)
	defer e.setClient(nil)
	select {
	case <-ctx.Done():
	case err = <-p.refused:
		err = fmt.Errorf("%w: %w", errRefused, err)
	case err = <-lost:
		e.connects.WithLabelValues("lost").Inc()
		err = fmt.Errorf("connection lost: %w", err)
	}
	up = max(time.Since(connected), time.Nanosecond)
	// Messages whose commit is pending are acknowledged if it completes before the
	// client disconnects; the rest the broker sends again.
	p.stop(2 * time.Second)
	// paho queues PUBACKs and then DISCONNECT on separate channels: disconnecting
	// straight away can drop acks of messages already committed, and the broker would
	// send them again (stored twice, for payloads without sequence numbers). An
	// UNSUBSCRIBE travels behind the acks already queued; its UNSUBACK proves the
	// broker has them.
	if c.IsConnectionOpen() {
		if t := c.Unsubscribe(flushTopic); !t.WaitTimeout(2*time.Second) || t.Error() != nil {
			e.log.Debug("ack flush before disconnect did not complete", "err", t.Error())
		}
	}
	c.Disconnect(250)
	return up, err
}

// connectError says what a failed connection attempt means for the person who set
// the URL and credentials.
func connectError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "bad user name or password"), strings.Contains(msg, "not Authorized"):
		return fmt.Errorf("the broker refused hearth's credentials (mqtt.external.username, password_file): %w", err)
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("nothing listens at the address of mqtt.external.url: %w", err)
	case strings.Contains(msg, "identifier rejected"):
		return fmt.Errorf("the broker rejected mqtt.external.client_id: %w", err)
	}
	return err
}

// subscriptions are the filters of the options and the topics added (how many), at
// QoS 1.
func (e *Source) subscriptions() (subs map[string]byte, added int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	subs = make(map[string]byte, len(e.o.Topics)+len(e.extra))
	for _, t := range e.o.Topics {
		subs[t] = 1
	}
	for _, t := range e.extra {
		subs[t] = 1
	}
	return subs, len(e.extra)
}

func (e *Source) setClient(c paho.Client) {
	e.mu.Lock()
	e.client = c
	e.mu.Unlock()
}

// subackTimeout bounds how long Subscribe and Unsubscribe wait for the broker's answer.
const subackTimeout = 10 * time.Second

// Subscribe adds topics to those subscribed to, at QoS 1, for as long as the Source
// lives: on every (re)connect from now on, and at once when connected (it then waits
// up to 10s for the broker's SUBACK). A topic a configured filter already matches, or
// one added before, is skipped.
//
// Topics are topic names, as devices publish them: one with a wildcard (+ or #) or a
// NUL, longer than 1024 bytes, not UTF-8 or empty is refused, as is going beyond
// MaxExtraSubscriptions (mqtt.ErrLimit); then none of topics is added.
// When the broker refuses a subscription (its ACL, typically) that topic is forgotten
// again and the error says so. Safe for concurrent use, before or during Run.
func (e *Source) Subscribe(topics ...string) error {
	for _, t := range topics {
		if t == "" {
			return errors.New("mqtt external: cannot subscribe to an empty topic")
		}
		if err := conv.CheckTopic(t); err != nil {
			return fmt.Errorf("mqtt external: cannot subscribe to %q: %v", conv.Truncate(t, 128), err)
		}
	}
	e.mu.Lock()
	var add []string
	for _, t := range topics {
		if e.added[t] || slices.Contains(add, t) || e.coveredLocked(t) {
			continue
		}
		add = append(add, t)
	}
	if len(add) == 0 {
		e.mu.Unlock()
		return nil
	}
	if n := len(e.extra) + len(add); n > e.o.MaxExtraSubscriptions {
		e.mu.Unlock()
		return fmt.Errorf("%w: mqtt external: subscribing to %q would make %d topics beyond the configured filters (max %d)",
			mqtt.ErrLimit, conv.Truncate(add[0], 128), n, e.o.MaxExtraSubscriptions)
	}
	for _, t := range add {
		e.added[t] = true
	}
	e.extra = append(e.extra, add...)
	c := e.client
	e.mu.Unlock()
	e.log.Info("subscribing to added topics", "topics", strings.Join(add, " "))
	// Not connected: the next connect subscribes to them (see the connect handler).
	if c == nil || !c.IsConnectionOpen() {
		return nil
	}
	subs := make(map[string]byte, len(add))
	for _, t := range add {
		subs[t] = 1
	}
	tok := c.SubscribeMultiple(subs, nil)
	if !tok.WaitTimeout(subackTimeout) {
		e.log.Warn("no SUBACK yet for added topics; they are subscribed again on the next connect", "topics", strings.Join(add, " "))
		return nil
	}
	if err := tok.Error(); err != nil {
		// The connection went down meanwhile: the next connect subscribes.
		e.log.Warn("subscribing to added topics failed; they are subscribed again on the next connect", "err", err)
		return nil
	}
	refused := refusedTopics(tok)
	if len(refused) == 0 {
		return nil
	}
	e.forget(refused)
	return fmt.Errorf("mqtt external: the broker refused the subscription to %q (its ACL for this client?)", conv.Truncate(refused[0], 128))
}

// Unsubscribe removes a topic Subscribe added: it is not subscribed to on later
// connects, and at once when connected (waiting up to 10s for the UNSUBACK; without
// it, the broker's session may deliver the topic until the next clean reconnect, and
// its messages are then decoded as any other). A topic not added (a configured filter
// covers it, or it was never added) is left alone. Safe for concurrent use.
func (e *Source) Unsubscribe(topic string) {
	e.mu.Lock()
	had := e.added[topic]
	c := e.client
	e.mu.Unlock()
	if !had {
		return
	}
	e.forget([]string{topic})
	e.log.Info("unsubscribing from an added topic", "topic", topic)
	if c == nil || !c.IsConnectionOpen() {
		return
	}
	if tok := c.Unsubscribe(topic); !tok.WaitTimeout(subackTimeout) || tok.Error() != nil {
		e.log.Warn("no UNSUBACK for a removed topic; it stays subscribed until hearth reconnects", "topic", topic, "err", tok.Error())
	}
}

func (e *Source) forget(topics []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.extra = slices.DeleteFunc(e.extra, func(t string) bool { return slices.Contains(topics, t) })
	for _, t := range topics {
		delete(e.added, t)
	}
}

func (e *Source) coveredLocked(topic string) bool {
	for _, f := range e.o.Topics {
		if MatchFilter(f, topic) {
			return true
		}
	}
	return false
}

// refusedTopics are the filters of a completed SUBSCRIBE the broker refused (SUBACK
// 0x80), sorted.
func refusedTopics(tok paho.Token) []string {
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	var refused []string
	for t, q := range st.Result() {
		if q == 0x80 {
			refused = append(refused, t)
		}
	}
	slices.Sort(refused)
	return refused
}

// Added returns the topics Subscribe added, in the order added.
func (e *Source) Added() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.extra)
}

// MatchFilter reports whether the topic name matches the subscription filter, with
// MQTT's wildcards: + is one whole level, # (last) the rest including none ("a/#"
// matches "a"). A topic starting with $ is not matched by a filter starting with a
// wildcard. A shared subscription ($share/<group>/<filter>) is matched by its filter.
func MatchFilter(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		filter = f
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return !fmore
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a": the filter's next, last level is #.
			return fmore == tmore || !tmore && frest == "#"
		}
		filter, topic = frest, trest
	}
}

// flushTopic is unsubscribed from (never subscribed) only for the UNSUBACK round trip.
const flushTopic = "hearth/internal/flush-acks"
