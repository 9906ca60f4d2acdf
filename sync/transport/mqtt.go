package transport

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/edge/store"
)

// AWSIoTMaxPayload is AWS IoT Core's limit on one message's payload.
const AWSIoTMaxPayload = 128 << 10

// MQTTOptions configure an MQTT uplink.
type MQTTOptions struct {
	Broker   string // tls://host:8883 (ssl:// and mqtts:// too), or tcp:// for a test broker
	ClientID string // default "hearth-" + the household pseudonym
	Username string
	Password string
	TLS      TLSFiles
	// Topic is the topic template; {household} is replaced by the household's
	// pseudonym (default "hearth/{household}/summaries").
	Topic          string
	MaxPayload     int           // bytes on the wire per message (default 128 KiB: AWS IoT Core)
	Window         int           // batches published before waiting for their PUBACKs (default 8)
	ConnectTimeout time.Duration // default 30s
	AckTimeout     time.Duration // a PUBACK not back by then: retried (default 30s)
	Version        string
}

// MQTT publishes each batch as one QoS 1 message of zstd protobuf. A batch leaves
// the outbox only after its PUBACK: paho's own store is not an outbox (a clean
// session, no automatic reconnect: a lost connection fails every publish in flight,
// and the outbox sends them again).
type MQTT struct {
	o     MQTTOptions
	codec *protoCodec

	mu     sync.Mutex
	client paho.Client
}

// DefaultMQTTOptions are the documented defaults of an MQTT uplink: the one place
// they are written (a zero field of MQTTOptions takes its value here;
// internal/config's sync.mqtt.* defaults are these).
func DefaultMQTTOptions() MQTTOptions {
	return MQTTOptions{Topic: "hearth/{household}/summaries", MaxPayload: AWSIoTMaxPayload, Window: 8,
		ConnectTimeout: 30 * time.Second, AckTimeout: 30 * time.Second}
}

// NewMQTT returns an MQTT uplink; it connects at the first Send.
func NewMQTT(o MQTTOptions) (*MQTT, error) {
	if o.Broker == "" {
		return nil, fmt.Errorf("transport: mqtt: no broker")
	}
	d := DefaultMQTTOptions()
	if o.Topic == "" {
		o.Topic = d.Topic
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = d.MaxPayload
	}
	if o.Window <= 0 {
		o.Window = d.Window
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = d.AckTimeout
	}
	if _, err := o.TLS.Config(); err != nil {
		return nil, fmt.Errorf("transport: mqtt: %w", err)
	}
	return &MQTT{o: o, codec: newProtoCodec(o.Version)}, nil
}

// Name implements Transport.
func (q *MQTT) Name() string { return "mqtt" }

// Limits implements Transport: a batch's protobuf may be as big as the payload limit
// (compression only shrinks it here; Encode checks the compressed size).
func (q *MQTT) Limits() Limits {
	return Limits{MaxMessages: 500, MaxBatchBytes: q.o.MaxPayload, MaxMessageBytes: min(q.o.MaxPayload, SegmentMaxEventBytes),
		MaxWireBytes: q.o.MaxPayload, Window: q.o.Window}
}

// Size implements Transport.
func (q *MQTT) Size(m store.Message) (int, error) { return q.codec.size(m) }

// Encode implements Transport.
func (q *MQTT) Encode(b Batch, sentAt time.Time) ([]byte, error) {
	body, err := q.codec.encode(b, sentAt)
	if err == nil && len(body) > q.o.MaxPayload {
		err = fmt.Errorf("transport: mqtt: payload of %d bytes: %w", len(body), ErrTooLarge)
	}
	return body, err
}

// Endpoint is the broker's host, for the audit.
func (q *MQTT) Endpoint() string { return EndpointHost(q.o.Broker) }

// Topic is the topic of a household's batches.
func (q *MQTT) Topic(household string) string {
	return strings.ReplaceAll(q.o.Topic, "{household}", household)
}

func (q *MQTT) connect(household string) (paho.Client, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil && q.client.IsConnectionOpen() {
		return q.client, nil
	}
	if q.client != nil {
		q.client.Disconnect(0)
		q.client = nil
	}
	tc, err := q.o.TLS.Config()
	if err != nil {
		return nil, &Error{Class: Auth, Err: err}
	}
	id := q.o.ClientID
	if id == "" {
		id = "hearth-" + household
	}
	opts := paho.NewClientOptions().AddBroker(q.o.Broker).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false).SetConnectTimeout(q.o.ConnectTimeout).
		SetWriteTimeout(q.o.AckTimeout).SetUsername(q.o.Username).SetPassword(q.o.Password).SetTLSConfig(tc).
		SetMaxResumePubInFlight(q.o.Window)
	c := paho.NewClient(opts)
	t := c.Connect()
	if !t.WaitTimeout(q.o.ConnectTimeout) {
		c.Disconnect(0)
		return nil, &Error{Class: Retry, Err: fmt.Errorf("mqtt: connect to %s: timed out", q.o.Broker)}
	}
	if err := t.Error(); err != nil {
		cls := Retry
		if strings.Contains(err.Error(), "not Authorized") || strings.Contains(err.Error(), "bad user name or password") {
			cls = Auth
		}
		return nil, &Error{Class: cls, Err: fmt.Errorf("mqtt: connect to %s: %w", q.o.Broker, err)}
	}
	q.client = c
	return c, nil
}

// Send implements Transport: it publishes every batch, in order, and then waits for
// each PUBACK (a window, not one round trip per batch).
func (q *MQTT) Send(ctx context.Context, bs []Batch) ([]error, int) {
	errs := make([]error, len(bs))
	if len(bs) == 0 {
		return errs, 0
	}
	c, err := q.connect(bs[0].Household)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs, 0
	}
	wire := 0
	tokens := make([]paho.Token, len(bs))
	for i, b := range bs {
		raw, body, err := q.codec.encodeRaw(b, time.Now())
		if err == nil && len(body) > q.o.MaxPayload {
			err = fmt.Errorf("transport: mqtt: payload of %d bytes: %w", len(body), ErrTooLarge)
		}
		if err != nil {
			errs[i] = &Error{Class: Reject, Err: err}
			continue
		}
		bs[i].Payload, bs[i].Wire = raw, len(body)
		wire += len(body)
		tokens[i] = c.Publish(q.Topic(b.Household), 1, false, body)
	}
	deadline := time.Now().Add(q.o.AckTimeout)
	for i, t := range tokens {
		if t == nil {
			continue
		}
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				errs[i] = &Error{Class: Retry, Err: fmt.Errorf("mqtt: publish: %w", err)}
			}
		case <-ctx.Done():
			errs[i] = &Error{Class: Retry, Err: ctx.Err()}
		case <-time.After(time.Until(deadline)):
			errs[i] = &Error{Class: Retry, Err: fmt.Errorf("mqtt: no PUBACK within %s", q.o.AckTimeout)}
		}
	}
	for _, e := range errs {
		if e != nil {
			// A lost or stuck connection: start the next attempt on a new one.
			q.mu.Lock()
			if q.client != nil {
				q.client.Disconnect(0)
				q.client = nil
			}
			q.mu.Unlock()
			break
		}
	}
	return errs, wire
}

// Close implements Transport.
func (q *MQTT) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.client != nil {
		q.client.Disconnect(250)
		q.client = nil
	}
	return nil
}
