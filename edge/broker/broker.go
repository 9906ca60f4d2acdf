package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
)

// Options configure a Broker. Zero limits take safe defaults (the LAN is hostile:
// mochi's own defaults are unlimited).
type Options struct {
	Auth    Authenticator   // required: who may connect
	Decoder devmqtt.Decoder // turns publishes into readings; nil: the native schema
	Sink    device.Sink     // where readings go (edge/ingest)

	MaxPacketBytes int           // default 64 KiB
	MaxClients     int           // default 256
	MaxInflight    int           // QoS 1 publishes awaiting commit per client; default 64
	SessionExpiry  time.Duration // default 24h
	// LockoutFailures failed logins from one address within LockoutWindow lock that
	// address out for LockoutWindow (defaults 5 and 1 minute).
	LockoutFailures int
	LockoutWindow   time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Broker is hearth's embedded MQTT broker: deny by default, and a QoS 1 PUBACK only
// after the reading is committed to the store.
type Broker struct {
	srv  *mqtt.Server
	opts Options
	log  *slog.Logger
	m    *metrics
	dec  devmqtt.Decoder

	lockMu sync.Mutex
	fails  map[string]*failures

	clientMu sync.Mutex
	inflight map[string]chan struct{} // per-client semaphores, keyed by client id
	closing  atomic.Bool
}

type failures struct {
	n     int
	first time.Time
	until time.Time
}

// New builds a broker; Serve starts it on a listener.
func New(o Options) (*Broker, error) {
	if o.Auth == nil {
		return nil, errors.New("broker: no authenticator: the broker denies by default and needs device credentials")
	}
	if o.Sink == nil {
		return nil, errors.New("broker: no sink")
	}
	if o.MaxPacketBytes <= 0 {
		o.MaxPacketBytes = 64 << 10
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 256
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 64
	}
	if o.SessionExpiry <= 0 {
		o.SessionExpiry = 24 * time.Hour
	}
	if o.LockoutFailures <= 0 {
		o.LockoutFailures = 5
	}
	if o.LockoutWindow <= 0 {
		o.LockoutWindow = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{opts: o, log: o.Logger.With("component", "broker"), fails: map[string]*failures{},
		inflight: map[string]chan struct{}{}}
	b.dec = o.Decoder
	if b.dec == nil {
		nat := devmqtt.Native{}
		if kc, ok := o.Auth.(interface {
			Kind(string) (device.Kind, bool)
		}); ok {
			nat.KindOf = kc.Kind
		}
		b.dec = nat
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(o.MaxClients)
	caps.MaximumPacketSize = uint32(o.MaxPacketBytes)
	caps.MaximumSessionExpiryInterval = uint32(o.SessionExpiry / time.Second)
	caps.ReceiveMaximum = uint16(min(o.MaxInflight, 65535))
	caps.MaximumInflight = uint16(min(o.MaxInflight, 65535))
	caps.MaximumClientWritesPending = 1024
	caps.MaximumQos = 1 // QoS 2 adds a round trip and nothing for readings: devices get QoS 1
	caps.RetainAvailable = 0
	caps.MaximumMessageExpiryInterval = int64(o.SessionExpiry / time.Second)
	b.srv = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: o.Logger.With("component", "broker.mochi"),
		ClientNetWriteBufferSize: 2048, ClientNetReadBufferSize: 2048})
	b.m = newMetrics(o.Registerer, b)
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return b, nil
}

// Serve accepts clients on ln (already bound, so that a busy port is reported before
// anything else starts) until Close.
func (b *Broker) Serve(ln net.Listener) error {
	if err := b.srv.AddListener(&boundListener{id: "tcp-" + ln.Addr().String(), ln: ln}); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return b.srv.Serve()
}

// Clients is the number of connected clients.
func (b *Broker) Clients() int { return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected)) }

// Close disconnects every client and stops the broker. Publishes whose commit is
// still pending lose their connection before their PUBACK: the device sends them
// again, and the store de-duplicates.
func (b *Broker) Close() error {
	b.closing.Store(true)
	err := b.srv.Close()
	b.m.unregister()
	return err
}

// boundListener adapts a bound net.Listener to mochi's listener interface.
type boundListener struct {
	id   string
	ln   net.Listener
	once sync.Once
}

func (l *boundListener) Init(*slog.Logger) error { return nil }
func (l *boundListener) ID() string              { return l.id }
func (l *boundListener) Address() string         { return l.ln.Addr().String() }
func (l *boundListener) Protocol() string        { return "tcp" }
func (l *boundListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		go func() { _ = establish(l.id, conn) }()
	}
}
func (l *boundListener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		closeClients(l.id)
		l.ln.Close()
	})
}

// hook is where hearth's policy meets mochi.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "hearth" }

func (h *hook) Provides(x byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnSubscribe}, []byte{x})
}

func remoteIP(cl *mqtt.Client) string {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return cl.Net.Remote
	}
	return host
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	ip := remoteIP(cl)
	now := time.Now()
	b.lockMu.Lock()
	f := b.fails[ip]
	locked := f != nil && now.Before(f.until)
	b.lockMu.Unlock()
	if locked {
		b.m.connects.WithLabelValues("locked_out").Inc()
		return false
	}
	user := string(pk.Connect.Username)
	id, ok := b.opts.Auth.Authenticate(user, pk.Connect.Password)
	if !ok {
		b.m.connects.WithLabelValues("bad_credentials").Inc()
		b.lockMu.Lock()
		f := b.fails[ip]
		if f == nil || now.Sub(f.first) > b.opts.LockoutWindow {
			if len(b.fails) > 10000 { // bounded: forget everyone rather than grow without end
				b.fails = map[string]*failures{}
			}
			f = &failures{first: now}
			b.fails[ip] = f
		}
		f.n++
		if f.n >= b.opts.LockoutFailures {
			f.until = now.Add(b.opts.LockoutWindow)
			b.log.Warn("address locked out after failed logins", "addr", ip, "failures", f.n, "for", b.opts.LockoutWindow)
		}
		b.lockMu.Unlock()
		return false
	}
	b.lockMu.Lock()
	delete(b.fails, ip)
	b.lockMu.Unlock()
	cl.Properties.Username = []byte(id.Device) // the identity used by the ACL
	b.m.connects.WithLabelValues("accepted").Inc()
	return true
}

// OnACLCheck: a device may publish only below hearth/v1/<its id>/, and subscribe to
// nothing but its own hearth/v1/<its id>/# (for acks and commands).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	dev := string(cl.Properties.Username)
	if dev == "" {
		return false
	}
	prefix := devmqtt.NativePrefix + dev + "/"
	if !strings.HasPrefix(topic, prefix) || strings.ContainsAny(topic, "+#") && write {
		h.b.m.publishes.WithLabelValues("denied").Inc()
		return false
	}
	return true
}

func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return pk // mochi applies OnACLCheck(write=false) per filter
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.clientMu.Lock()
	delete(h.b.inflight, cl.ID)
	h.b.clientMu.Unlock()
}

func (b *Broker) semaphore(cl *mqtt.Client) chan struct{} {
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	s, ok := b.inflight[cl.ID]
	if !ok {
		s = make(chan struct{}, b.opts.MaxInflight)
		b.inflight[cl.ID] = s
	}
	return s
}

// OnPublish decodes a publish and hands it to the sink. It always returns
// ErrRejectPacket so that mochi neither acknowledges nor forwards it: the PUBACK is
// written here once the store reports the readings durable. A refusal by the store is
// a PUBACK with reason 0x97 (quota exceeded) or 0x80 for MQTT 5, and no PUBACK at all
// for MQTT 3.1.1 (the client sends it again later).
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return pk, nil
	}
	rs, err := b.dec.Decode(pk.TopicName, pk.Payload, time.Now())
	if err != nil {
		reason := "malformed"
		if errors.Is(err, devmqtt.ErrUnknownDevice) {
			reason = "unknown_device"
		}
		b.m.publishes.WithLabelValues(reason).Inc()
		b.logLimited("publish refused", "client", cl.ID, "topic", truncate(pk.TopicName, 128), "err", err)
		// Malformed data will never become valid by sending it again: acknowledge it
		// as handled (MQTT 5: with reason 0x99 payload format invalid) so that a
		// broken device does not loop on it. It is counted, never stored.
		b.ack(cl, pk, packets.ErrPayloadFormatInvalid, true)
		return pk, packets.ErrRejectPacket
	}
	for i := range rs {
		if rs[i].Device != string(cl.Properties.Username) {
			b.m.publishes.WithLabelValues("denied").Inc()
			b.ack(cl, pk, packets.ErrNotAuthorized, true)
			return pk, packets.ErrRejectPacket
		}
	}
	b.m.payloadBytes.Add(float64(len(pk.Payload)))
	sem := b.semaphore(cl)
	sem <- struct{}{} // back-pressure: at most MaxInflight publishes of this client await commit
	n := len(rs)
	b.opts.Sink.Submit(rs, func(err error) {
		<-sem
		if err != nil {
			b.m.publishes.WithLabelValues("refused").Inc()
			b.m.readings.WithLabelValues("refused").Add(float64(n))
			b.logLimited("store refused readings: not acknowledged", "client", cl.ID, "err", err)
			code := packets.ErrUnspecifiedError
			if strings.Contains(err.Error(), "quota") {
				code = packets.ErrQuotaExceeded
			}
			b.ack(cl, pk, code, false) // never acknowledged to an MQTT 3.1.1 client
			return
		}
		b.m.publishes.WithLabelValues("committed").Inc()
		b.m.readings.WithLabelValues("committed").Add(float64(n))
		b.ack(cl, pk, packets.CodeSuccess, true)
	})
	return pk, packets.ErrRejectPacket
}

// ack writes the PUBACK of a QoS 1 publish. MQTT 5 clients get code as its reason;
// an MQTT 3.1.1 client, whose PUBACK carries no reason, gets one only when v3 is true.
func (b *Broker) ack(cl *mqtt.Client, pk packets.Packet, code packets.Code, v3 bool) {
	if pk.FixedHeader.Qos == 0 {
		return
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = code.Code
		if code.Code >= 0x80 {
			ack.Properties.ReasonString = code.Reason
		}
	} else if !v3 {
		return
	}
	if err := cl.WritePacket(ack); err != nil && !b.closing.Load() {
		b.logLimited("write PUBACK failed", "client", cl.ID, "err", err)
	}
}

var lastLog atomic.Int64

// logLimited logs at most one warning a second, so a flooding device cannot flood
// the log; the metrics count every event.
func (b *Broker) logLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := lastLog.Load()
	if now-last < int64(time.Second) || !lastLog.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn(msg, args...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
