package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
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
type External struct {
	o   ExternalOptions
	log *slog.Logger

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
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &External{o: o, log: o.Logger.With("component", "mqtt.external", "broker", u.Host),
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
	if e.set, err = metricset.Register(o.Registerer, e.msgs, e.connects); err != nil {
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
	subs := make(map[string]byte, len(e.o.Topics))
	for _, t := range e.o.Topics {
		subs[t] = 1
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
			e.log.Info("connected to external broker; subscribing", "topics", strings.Join(e.o.Topics, " "))
			tok := c.SubscribeMultiple(subs, nil) // nil: the default handler above
			go func() {
				if tok.WaitTimeout(30*time.Second) && tok.Error() != nil {
					e.log.Error("subscribe failed", "err", tok.Error())
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
