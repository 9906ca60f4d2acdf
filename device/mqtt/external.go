package mqtt

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
	"github.com/hearth-iot/hearth/internal/metricset"
)

// ExternalOptions configure an External source.
type ExternalOptions struct {
	URL      string // tcp://host:1883, ssl://host:8883 (mqtt:// and mqtts:// are accepted too)
	ClientID string // the persistent session's key on the broker: keep it stable
	Username string
	Password string
	TLS      *tls.Config // for ssl://; nil: system roots
	// Topics are the filters subscribed to, at QoS 1.
	Topics []string
	// MaxExtraSubscriptions bounds the topics Subscribe adds beyond Topics (default 256).
	MaxExtraSubscriptions int
	// Decoder turns messages into readings (a Router of the adapters).
	Decoder Decoder
	// MaxInflight bounds the messages received but not yet committed (default 256).
	MaxInflight int
	// ReconnectMax is the longest wait between reconnect attempts (default 1m).
	ReconnectMax time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// External subscribes to a broker the household already runs (mosquitto with
// Zigbee2MQTT, say) and hands what its devices publish to a sink.
//
// # Delivery
//
// The session is persistent (clean session off) and every subscription is QoS 1, so
// the broker keeps what is published while hearth is away. A message is acknowledged
// (PUBACK) only after the sink reports its readings committed: if hearth stops
// before that, the broker sends it again on the next connection, and the store
// de-duplicates what carries a boot id and sequence. A message that cannot be decoded
// is counted and acknowledged (it would never become valid). When the sink refuses
// readings (quota, I/O error) the message is left unacknowledged and the session is
// re-established after a backoff, which makes the broker send it again.
//
// The broker's own limits still apply: mosquitto keeps at most max_queued_messages
// (default 1000) per offline session; raise it for hubs that may be down for long.
//
// # Connection
//
// Reconnects back off from 1s to ReconnectMax with jitter; subscriptions are renewed
// on every (re)connect, and messages the broker resends before that are handled too.
//
// # Subscriptions added at run time
//
// Subscribe adds topics (the state topic of a Home Assistant entity accepted while
// hearth runs, say) to those of the options. They are remembered for the life of the
// External and subscribed to again on every (re)connect with the configured filters:
// a broker restarted without persistence, or a session it expired, has forgotten
// them. There is no unsubscribe: a topic stays subscribed until hearth restarts.
type External struct {
	o   ExternalOptions
	log *slog.Logger

	mu     sync.Mutex
	extra  []string        // added by Subscribe, in order
	added  map[string]bool // the same, as a set
	client paho.Client     // the current session's client; nil between sessions

	msgs     *prometheus.CounterVec
	connects *prometheus.CounterVec
	set      *metricset.Set
}

// Results counted by hearth_mqtt_external_messages_total.
var externalResults = []string{"committed", "ignored", "refused", "malformed", "unknown_device", "unknown_topic", "limit"}

// NewExternal checks o and returns the source.
func NewExternal(o ExternalOptions) (*External, error) {
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
	if o.Decoder == nil {
		return nil, errors.New("mqtt external: no decoder")
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 256
	}
	if o.MaxExtraSubscriptions <= 0 {
		o.MaxExtraSubscriptions = 256
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &External{o: o, log: o.Logger.With("component", "mqtt.external", "broker", u.Host), added: make(map[string]bool),
		msgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_messages_total",
			Help: "Messages from the external broker, by result: committed, ignored (nothing to store), refused (by the store; sent again), malformed, unknown_device, unknown_topic, limit."},
			[]string{"result"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_mqtt_external_connects_total",
			Help: "Connections to the external broker, by result: ok, failed, lost."}, []string{"result"}),
	}
	for _, r := range externalResults {
		e.msgs.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed", "lost"} {
		e.connects.WithLabelValues(r)
	}
	added := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_mqtt_external_added_topics",
		Help: "Topics subscribed to beyond the configured filters (accepted Home Assistant entities' state topics); at most max_extra_subscriptions."},
		func() float64 { e.mu.Lock(); defer e.mu.Unlock(); return float64(len(e.extra)) })
	if e.set, err = metricset.Register(o.Registerer, e.msgs, e.connects, added); err != nil {
		return nil, fmt.Errorf("mqtt external: metrics: %w", err)
	}
	return e, nil
}

// Name implements device.Source.
func (e *External) Name() string { return "mqtt external " + e.o.URL }

// Unregister removes the metrics from the registerer given in the options.
func (e *External) Unregister() { e.set.Unregister() }

// Run implements device.Source: it stays subscribed until ctx ends.
func (e *External) Run(ctx context.Context, sink device.Sink) error {
	backoff := time.Second
	for {
		refused, err := e.session(ctx, sink)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		// The store refused a message: leave it unacknowledged, drop the
		// connection and come back later so that the broker sends it again.
		e.log.Warn("store refused readings: reconnecting later so the broker sends them again", "err", refused, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(jitter(backoff)):
		}
		backoff = min(backoff*2, e.o.ReconnectMax)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// session runs one client until ctx ends (nil, nil) or the sink refuses readings
// (that error, nil).
func (e *External) session(ctx context.Context, sink device.Sink) (refused error, err error) {
	sem := make(chan struct{}, e.o.MaxInflight)
	refusedc := make(chan error, 1)
	stop := make(chan struct{})
	handle := func(_ paho.Client, m paho.Message) {
		select {
		case sem <- struct{}{}:
		case <-stop:
			return // not acknowledged: sent again on the next connection
		}
		release := func() { <-sem }
		rs, derr := e.o.Decoder.Decode(m.Topic(), m.Payload(), time.Now())
		if derr != nil || len(rs) == 0 {
			e.msgs.WithLabelValues(decodeResult(derr)).Inc()
			if derr != nil {
				e.log.Debug("message refused", "topic", truncate(m.Topic(), 128), "err", derr)
			}
			m.Ack()
			release()
			return
		}
		sink.Submit(rs, func(serr error) {
			defer release()
			if serr != nil {
				e.msgs.WithLabelValues("refused").Inc()
				select {
				case refusedc <- serr:
				default:
				}
				return
			}
			e.msgs.WithLabelValues("committed").Inc()
			m.Ack()
		})
	}
	opts := paho.NewClientOptions().AddBroker(e.o.URL).SetClientID(e.o.ClientID).
		SetUsername(e.o.Username).SetPassword(e.o.Password).
		SetCleanSession(false).SetAutoAckDisabled(true).SetOrderMatters(false).
		SetResumeSubs(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(e.o.ReconnectMax).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetDefaultPublishHandler(handle).
		SetOnConnectHandler(func(c paho.Client) {
			e.connects.WithLabelValues("ok").Inc()
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
				if tok.Error() != nil {
					e.log.Error("subscribe failed", "err", tok.Error())
				} else if refused := refusedTopics(tok); len(refused) > 0 {
					e.log.Error("the broker refused subscriptions (its ACL for this client?)", "topics", strings.Join(refused, " "))
				}
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			e.connects.WithLabelValues("lost").Inc()
			e.log.Warn("connection to external broker lost; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			e.connects.WithLabelValues("failed").Inc()
		})
	if e.o.TLS != nil {
		opts.SetTLSConfig(e.o.TLS)
	}
	c := paho.NewClient(opts)
	e.setClient(c)
	defer e.setClient(nil)
	tok := c.Connect() // with ConnectRetry, completes once connected (or on Disconnect)
	go func() {
		if tok.Wait() && tok.Error() != nil {
			e.log.Error("connect failed", "err", tok.Error())
		}
	}()
	select {
	case <-ctx.Done():
	case refused = <-refusedc:
	}
	// Messages whose commit is pending are acknowledged if it completes before the
	// client disconnects; the rest the broker sends again.
	close(stop)
	drain := time.After(2 * time.Second)
fill:
	for range cap(sem) {
		select {
		case sem <- struct{}{}:
		case <-drain:
			break fill
		}
	}
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
	return refused, nil
}

// subscriptions are the filters of the options and the topics added (how many), at
// QoS 1.
func (e *External) subscriptions() (subs map[string]byte, added int) {
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

func (e *External) setClient(c paho.Client) {
	e.mu.Lock()
	e.client = c
	e.mu.Unlock()
}

// subackTimeout bounds how long Subscribe waits for the broker's SUBACK.
const subackTimeout = 10 * time.Second

// Subscribe adds topics to those subscribed to, at QoS 1, for as long as the External
// lives: on every (re)connect from now on, and at once when connected (it then waits
// up to 10s for the broker's SUBACK). A topic a configured filter already matches, or
// one added before, is skipped.
//
// Topics are topic names, as devices publish them: one with a wildcard (+ or #) or a
// NUL, longer than 1024 bytes, not UTF-8 or empty is refused, as is going beyond
// MaxExtraSubscriptions (ErrLimit); then none of topics is added.
// When the broker refuses a subscription (its ACL, typically) that topic is forgotten
// again and the error says so. Safe for concurrent use, before or during Run.
func (e *External) Subscribe(topics ...string) error {
	for _, t := range topics {
		if t == "" {
			return errors.New("mqtt external: cannot subscribe to an empty topic")
		}
		if err := checkTopic(t); err != nil {
			return fmt.Errorf("mqtt external: cannot subscribe to %q: %v", truncate(t, 128), err)
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
			ErrLimit, truncate(add[0], 128), n, e.o.MaxExtraSubscriptions)
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
	e.mu.Lock()
	e.extra = slices.DeleteFunc(e.extra, func(t string) bool { return slices.Contains(refused, t) })
	for _, t := range refused {
		delete(e.added, t)
	}
	e.mu.Unlock()
	return fmt.Errorf("mqtt external: the broker refused the subscription to %q (its ACL for this client?)", truncate(refused[0], 128))
}

func (e *External) coveredLocked(topic string) bool {
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
func (e *External) Added() []string {
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

func decodeResult(err error) string {
	switch {
	case err == nil:
		return "ignored"
	case errors.Is(err, ErrUnknownDevice):
		return "unknown_device"
	case errors.Is(err, ErrNotMine):
		return "unknown_topic"
	case errors.Is(err, ErrLimit):
		return "limit"
	}
	return "malformed"
}
