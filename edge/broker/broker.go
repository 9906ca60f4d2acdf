package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/hearth-iot/hearth/device/mqtt/native"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
)

// Options configure a Broker. Zero limits take safe defaults (the LAN is hostile:
// mochi's own defaults are unlimited).
type Options struct {
	Auth    Authenticator   // required: who may connect
	Handler devmqtt.Handler // turns publishes into readings (mqtt.Adapters); nil: the native schema
	Sink    device.Sink     // where readings go (edge/ingest)
	// Retryable tells which refusals of Sink may pass later (left unacknowledged for
	// the device to send again); any other is final (acknowledged and counted as
	// rejected). Default ingest.Retryable, the classification every source uses.
	Retryable func(error) bool

	MaxPacketBytes   int           // default 64 KiB
	MaxClients       int           // connected clients, exactly (default 256); beyond it CONNACK "server busy"
	MaxInflight      int           // QoS 1 publishes awaiting commit per client; default 64
	MaxPendingWrites int           // messages queued for delivery to one client (beyond: dropped for it); default 64
	SessionExpiry    time.Duration // default 24h
	// MaxConnecting bounds connections that have not finished connecting — not yet
	// through their password check (default 32): mochi allocates what a CONNECT
	// announces (up to MaxPacketBytes) before reading it, and a connection waiting
	// for its password check holds that and a goroutine, so they must not be
	// unbounded on a LAN (mochi #502). MaxConnectingPerSource (default 8) bounds
	// those of one source (an IPv4 address, an IPv6 /64), so that one host cannot
	// take them all; when all are taken, a source holding fewer takes the place of
	// the busiest source's oldest (see admission). Connections refused are closed
	// at once and counted.
	MaxConnecting          int
	MaxConnectingPerSource int
	// ConnectTimeout is how long a new connection may take to send its CONNECT
	// (default 5s), TLS handshake included: a connection that never sends one holds
	// its slot for no longer.
	ConnectTimeout time.Duration
	// PublishRate is the sustained publishes per second one client may send, with
	// bursts of PublishBurst (defaults 200 and 400). Beyond it a publish is refused
	// (MQTT 5: PUBACK 0x97; MQTT 3.1.1: no PUBACK) and counted as rate_limited.
	PublishRate  float64
	PublishBurst int
	// LockoutFailures failed logins from one source with one device name within
	// LockoutWindow lock that pair out for LockoutWindow; as many from one source,
	// whatever the names, make its password checks wait for one another (defaults 5
	// and 1 minute). See lockout.go.
	LockoutFailures int
	LockoutWindow   time.Duration
	// MaxTopicLevels and MaxTopicBytes bound a published topic (defaults 16 and
	// 1024): a longer or deeper one is refused as topic_invalid (MQTT 5: PUBACK 0x90;
	// MQTT 3.1.1: the connection is closed).
	MaxTopicLevels int
	MaxTopicBytes  int
	// MaxSubscriptions is the most subscriptions one client may hold (default 16):
	// each is kept in the session, and mochi has no limit of its own.
	MaxSubscriptions int
	// MaxTopicAliases is the most MQTT 5 topic aliases a client may set (default 16;
	// mochi's default, 65535 aliases of up to MaxTopicBytes each, is 64 MB a client).
	MaxTopicAliases int

	// Now is the clock of the publish-rate buckets and the lockouts (default
	// time.Now); tests inject one.
	Now func() time.Time

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
	h    devmqtt.Handler

	lockMu sync.Mutex
	fails  map[string]*failures

	suspectChecks chan struct{} // one token: the password check of a suspect source (lockout.go)

	clientMu  sync.Mutex
	states    map[*mqtt.Client]*clientState
	clients   atomic.Int64 // client slots taken (MaxClients; admission.go)
	admit     *admission   // connections still connecting (MaxConnecting)
	closing   atomic.Bool
	serveMu   sync.Mutex     // orders Serve and the accept loops' start against Close
	lns       []net.Listener // served (under serveMu)
	accepting sync.WaitGroup // accept loops running (added under serveMu)
	lastLog   atomic.Int64   // time of the last rate-limited warning (logLimited)
}

func (b *Broker) now() time.Time { return b.opts.Now() }

// New builds a broker; Serve starts it on a listener.
// DefaultOptions are the documented limits: the one place they are written
// (internal/config's defaults are these; a zero field of Options takes its value here).
func DefaultOptions() Options {
	return Options{MaxPacketBytes: 64 << 10, MaxClients: 256, MaxInflight: 64, MaxPendingWrites: 64,
		SessionExpiry: 24 * time.Hour, MaxConnecting: 32, MaxConnectingPerSource: 8, ConnectTimeout: 5 * time.Second,
		PublishRate: 200, PublishBurst: 400, MaxTopicLevels: 16, MaxTopicBytes: 1024, MaxTopicAliases: 16,
		MaxSubscriptions: 16, LockoutFailures: 5, LockoutWindow: time.Minute}
}

func New(o Options) (*Broker, error) {
	go dummyHash() // ready before the first unknown user, so that it too takes one check
	if o.Auth == nil {
		return nil, errors.New("broker: no authenticator: the broker denies by default and needs device credentials")
	}
	if o.Sink == nil {
		return nil, errors.New("broker: no sink")
	}
	d := DefaultOptions()
	orDefault(&o.MaxPacketBytes, d.MaxPacketBytes)
	orDefault(&o.MaxClients, d.MaxClients)
	orDefault(&o.MaxInflight, d.MaxInflight)
	orDefault(&o.MaxPendingWrites, d.MaxPendingWrites)
	orDefault(&o.SessionExpiry, d.SessionExpiry)
	orDefault(&o.MaxConnecting, d.MaxConnecting)
	orDefault(&o.MaxConnectingPerSource, min(d.MaxConnectingPerSource, o.MaxConnecting))
	orDefault(&o.ConnectTimeout, d.ConnectTimeout)
	orDefault(&o.PublishRate, d.PublishRate)
	orDefault(&o.PublishBurst, d.PublishBurst)
	orDefault(&o.MaxTopicLevels, d.MaxTopicLevels)
	orDefault(&o.MaxTopicBytes, d.MaxTopicBytes)
	orDefault(&o.MaxTopicAliases, d.MaxTopicAliases)
	orDefault(&o.MaxSubscriptions, d.MaxSubscriptions)
	orDefault(&o.LockoutFailures, d.LockoutFailures)
	orDefault(&o.LockoutWindow, d.LockoutWindow)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retryable == nil {
		o.Retryable = ingest.Retryable
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Broker{opts: o, log: o.Logger.With("component", "broker"), fails: map[string]*failures{},
		states: map[*mqtt.Client]*clientState{}, admit: newAdmission(o.MaxConnecting, o.MaxConnectingPerSource),
		suspectChecks: make(chan struct{}, 1)}
	b.h = o.Handler
	if b.h == nil {
		nat, pb := native.JSON{}, native.Proto{}
		if kc, ok := o.Auth.(interface {
			Kind(string) (device.Kind, bool)
		}); ok {
			nat.KindOf, pb.KindOf = kc.Kind, kc.Kind
		}
		b.h = devmqtt.Adapters{Decoder: devmqtt.Router{nat, pb}}
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// mochi's own client limit is checked before the password check and counted after
	// it: concurrent connects all pass it (263 connected of 256). hearth's is exact
	// (takeClientSlot), so mochi's is off.
	caps.MaximumClients = math.MaxInt64
	caps.MaximumPacketSize = uint32(o.MaxPacketBytes)
	caps.MaximumSessionExpiryInterval = uint32(o.SessionExpiry / time.Second)
	caps.ReceiveMaximum = uint16(min(o.MaxInflight, 65535))
	caps.MaximumInflight = uint16(min(o.MaxInflight, 65535))
	caps.MaximumClientWritesPending = int32(min(o.MaxPendingWrites, 1<<30))
	// MQTT 5 clients are told Maximum QoS 1 in the CONNACK (QoS 2 adds a round trip
	// and nothing for readings), and a QoS 2 PUBLISH from one is a protocol error
	// (DISCONNECT 0x9B). MQTT 3.1.1 has no way to say so: its QoS 2 publishes get
	// the full flow, PUBREC after the commit (see OnPacketRead and writeAcks).
	caps.MaximumQos = 1
	caps.TopicAliasMaximum = uint16(min(o.MaxTopicAliases, 65535))
	caps.RetainAvailable = 0
	caps.MaximumMessageExpiryInterval = int64(o.SessionExpiry / time.Second)
	// $SYS topics: mochi refreshes its ~20 retained $SYS messages every
	// SysTopicResendInterval seconds (default 1), each refresh a runtime.ReadMemStats
	// (it stops the world) and 20 retained copies, a wake-up every second for an idle
	// hub. No client can read them (OnACLCheck refuses every $ filter) and hearth's own
	// figures are in /metrics, so the refresh is put off for as long as a ticker can
	// wait (sysTopicInterval).
	b.srv = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: o.Logger.With("component", "broker.mochi"),
		ClientNetWriteBufferSize: 2048, ClientNetReadBufferSize: 2048, SysTopicResendInterval: sysTopicInterval})
	b.m = newMetrics(o.Registerer, b)
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return b, nil
}

// sysTopicInterval is mochi's SysTopicResendInterval, in seconds: the longest a
// time.Duration holds (292 years), i.e. never.
const sysTopicInterval = math.MaxInt64 / int64(time.Second)

// orDefault sets *p to def when it is zero or negative: the Options' zero values.
func orDefault[T int | float64 | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// Serve accepts clients on lns (already bound, so that a busy port is reported before
// anything else starts; a TLS listener from crypto/tls.NewListener serves MQTT over
// TLS) until Close. It returns once the listeners are started.
func (b *Broker) Serve(lns ...net.Listener) error {
	if len(lns) == 0 {
		return errors.New("broker: no listener")
	}
	// Serve and Close may race (an agent stopped as it starts): once Close has begun,
	// Serve only closes the listeners, or mochi would start serving on them after it
	// was stopped, and nothing would ever close them.
	b.serveMu.Lock()
	defer b.serveMu.Unlock()
	if b.closing.Load() {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return nil
	}
	b.lns = append(b.lns, lns...)
	for i, ln := range lns {
		id := fmt.Sprintf("l%d-%s", i, ln.Addr().String())
		if err := b.srv.AddListener(&boundListener{id: id, ln: ln, b: b}); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	return b.srv.Serve()
}

// Clients is the number of connected clients.
func (b *Broker) Clients() int { return int(atomic.LoadInt64(&b.srv.Info.ClientsConnected)) }

// Close disconnects every client and stops the broker. Publishes whose commit is
// still pending lose their connection before their PUBACK: the device sends them
// again, and the store de-duplicates.
func (b *Broker) Close() error {
	b.serveMu.Lock()
	if b.closing.Swap(true) {
		b.serveMu.Unlock()
		return nil // closed already (mochi's Close may not run twice)
	}
	lns := b.lns
	b.serveMu.Unlock()
	// Stop accepting before mochi waits for its clients: mochi counts a client in
	// Listeners.ClientsWg when the client's goroutine starts, and an Add from zero
	// concurrent with that Wait is a race (the race detector caught one when an agent
	// stopped as a client connected). The accept loops hold a count for each client
	// they hand over (see Serve below), so mochi's own Add never starts from zero, and
	// once they have returned no new count can start.
	for _, ln := range lns {
		_ = ln.Close()
	}
	b.accepting.Wait()
	// mochi's Close disconnects the clients it holds and then waits for every client
	// goroutine, a connection still connecting too: that one would go on to connect
	// and be served until its keep-alive ran out, and Close with it. Those still
	// connecting are closed here; those that finish connecting from now on are
	// refused (OnConnectAuthenticate) or stopped once established (OnSessionEstablished).
	b.admit.closeAll()
	err := b.srv.Close()
	b.m.unregister()
	return err
}

// boundListener adapts a bound net.Listener to mochi's listener interface.
type boundListener struct {
	id   string
	ln   net.Listener
	b    *Broker
	once sync.Once
}

func (l *boundListener) Init(*slog.Logger) error { return nil }
func (l *boundListener) ID() string              { return l.id }
func (l *boundListener) Address() string         { return l.ln.Addr().String() }
func (l *boundListener) Protocol() string        { return "tcp" }
func (l *boundListener) Serve(establish listeners.EstablishFn) {
	l.b.serveMu.Lock()
	if l.b.closing.Load() {
		l.b.serveMu.Unlock()
		return
	}
	l.b.accepting.Add(1)
	l.b.serveMu.Unlock()
	defer l.b.accepting.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		b := l.b
		g := &gatedConn{Conn: conn, b: b, source: sourceOf(conn.RemoteAddr()), gone: make(chan struct{})}
		refused, evicted := b.admit.admit(g)
		if evicted != nil {
			evicted.Close()
			b.m.connects.WithLabelValues("connecting_evicted").Inc()
			b.logLimited("every connecting slot taken: closed the oldest of the busiest source", "source", evicted.source,
				"for", g.source, "max_connecting", b.opts.MaxConnecting)
		}
		if refused != "" {
			conn.Close()
			b.m.connects.WithLabelValues(refused).Inc()
			b.logLimited("too many connections still connecting: closed a new one", "remote", conn.RemoteAddr().String(),
				"result", refused, "max_connecting", b.opts.MaxConnecting, "max_connecting_per_source", b.opts.MaxConnectingPerSource)
			continue
		}
		// A new connection has ConnectTimeout to send its CONNECT (mochi sets no
		// deadline before it; after it, the keep-alive sets the deadline). The
		// deadline is absolute: trickling bytes does not extend it.
		_ = conn.SetDeadline(time.Now().Add(b.opts.ConnectTimeout))
		b.srv.Listeners.ClientsWg.Add(1) // held until the client ends (Close)
		go l.establish(establish, g)
	}
}

// establish serves one connection. A panic in mochi's packet decoding (mochi #501:
// a truncated MQTT 5 SUBSCRIBE) ends that connection, is counted, and leaves the
// broker serving everyone else.
func (l *boundListener) establish(establish listeners.EstablishFn, conn net.Conn) {
	defer l.b.srv.Listeners.ClientsWg.Done()
	defer func() {
		if r := recover(); r != nil {
			conn.Close()
			l.b.m.connects.WithLabelValues("panic").Inc()
			l.b.log.Error("client connection panicked in the MQTT library: connection closed", "remote", conn.RemoteAddr().String(), "panic", fmt.Sprint(r))
		}
	}()
	_ = establish(l.id, conn)
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
	switch x { // asked for every hook point of every packet
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnSubscribe, mqtt.OnPacketRead,
		mqtt.OnSessionEstablished:
		return true
	}
	return false
}

// OnConnectAuthenticate decides who connects: a device with its own credentials, from
// a source whose (source, device) pair is not locked out (lockout.go), while a client
// slot is free. The connection keeps its connecting slot until the decision.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	g, _ := cl.Net.Conn.(*gatedConn)
	if g == nil { // not accepted by boundListener: nothing in hearth makes one
		return false
	}
	defer g.connected()
	now := b.now()
	user := string(pk.Connect.Username)
	if user == "" || !pk.Connect.PasswordFlag {
		b.m.connects.WithLabelValues("no_credentials").Inc()
		b.failed(g.source, "", now)
		return false
	}
	if b.lockedOut(g.source, user, now) {
		b.m.connects.WithLabelValues("locked_out").Inc()
		return false
	}
	done, ok := b.checkTurn(g.gone, b.suspect(g.source, now))
	if !ok {
		return false // closed while waiting (evicted): counted as connecting_evicted
	}
	id, ok := b.opts.Auth.Authenticate(user, pk.Connect.Password)
	done()
	if !ok {
		b.m.connects.WithLabelValues("bad_credentials").Inc()
		b.failed(g.source, user, now)
		return false
	}
	b.succeeded(g.source, user)
	if b.closing.Load() {
		return false // the broker is closing (see Close)
	}
	// A session belongs to one device: mochi keys sessions by client id alone, and a
	// client with the id of another device's session takes it over (disconnecting
	// that device and inheriting its subscriptions). Two devices whose firmware uses
	// one fixed client id (common in examples) would throw each other out for ever.
	// The id mochi keys by is the device's name and the client id; the client never
	// sees it (an id the broker assigns is sent in the CONNACK from elsewhere).
	cl.ID = id.Device + "/" + cl.ID
	var old *gatedConn
	if prev, ok := b.srv.Clients.Get(cl.ID); ok && !prev.Closed() {
		old, _ = prev.Net.Conn.(*gatedConn)
	}
	if !b.takeClientSlot(g, old) {
		b.m.connects.WithLabelValues("too_many_clients").Inc()
		b.logLimited("broker.max_clients connected: refused a client", "client", cl.ID, "max_clients", b.opts.MaxClients)
		// Server busy (MQTT 3.1.1: server unavailable), not the "bad user name or
		// password" mochi sends when this hook says no: the CONNACK is written here
		// and the connection closed, so mochi's own cannot follow it.
		code := packets.ErrServerBusy
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable // 3.1.1 return code 3
		}
		_ = b.srv.SendConnack(cl, code, false, nil)
		cl.Stop(code)
		return false
	}
	cl.Properties.Username = []byte(id.Device) // the identity used by the ACL
	// mochi sends a will to subscribers when the connection drops, past OnPublish
	// and the ACL: one to a topic the device may not publish to (another device's
	// hearth/v1/<id>/, which that device may subscribe to) is dropped, and counted
	// as a denied publish by OnACLCheck.
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !h.OnACLCheck(cl, cl.Properties.Will.TopicName, true) {
		b.logLimited("will on a topic the device may not publish to: dropped", "client", cl.ID,
			"topic", truncate(cl.Properties.Will.TopicName, 128))
		cl.Properties.Will = mqtt.Will{}
	}
	b.m.connects.WithLabelValues("accepted").Inc()
	return true
}

// OnSessionEstablished stops a client that finished connecting after the broker began
// to close: mochi added it to its clients after its Close had disconnected them, and
// would serve it until its keep-alive ran out (see Close).
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if h.b.closing.Load() {
		cl.Stop(packets.ErrServerShuttingDown)
	}
}

// OnACLCheck: a device may publish below hearth/v1/<its id>/, and to the topics of
// the adapters (Zigbee2MQTT, Tasmota, Homie, Home Assistant state topics) when every
// reading the publish decodes to is its own (OnPublish checks that); never below
// another device's hearth/v1/<id>/. It may subscribe to nothing but its own
// hearth/v1/<its id>/#, with at most MaxSubscriptions filters.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	dev := string(cl.Properties.Username)
	if dev == "" {
		return false
	}
	prefix := native.Prefix + dev + "/"
	if strings.HasPrefix(topic, prefix) && !(write && strings.ContainsAny(topic, "+#")) {
		if write {
			return true
		}
		// mochi asks once per filter and adds each allowed one before asking about
		// the next, from the client's own read loop: the count is exact.
		if _, again := cl.State.Subscriptions.Get(topic); again || cl.State.Subscriptions.Len() < h.b.opts.MaxSubscriptions {
			return true
		}
		h.b.m.subscribes.WithLabelValues("too_many").Inc()
		h.b.logLimited("subscriptions beyond broker.max_subscriptions refused", "client", cl.ID, "max_subscriptions", h.b.opts.MaxSubscriptions)
		return false
	}
	if write && !strings.HasPrefix(topic, native.Prefix) && !strings.HasPrefix(topic, "$") {
		return true
	}
	if write {
		h.b.m.publishes.WithLabelValues("denied").Inc()
	} else {
		h.b.m.subscribes.WithLabelValues("denied").Inc()
	}
	return false
}

func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return pk // mochi applies OnACLCheck(write=false) per filter
}

// OnPacketRead sees each PUBLISH before mochi does, and answers what mochi would get
// wrong (hook errors other than ErrRejectPacket are ignored by mochi, so each case
// either answers itself or ends the connection with ErrRejectPacket):
//
//   - A topic longer than MaxTopicBytes or deeper than MaxTopicLevels is well formed
//     MQTT but not accepted here. MQTT 5 has the answer for exactly that: PUBACK
//     0x90, "Topic Name invalid: correctly formed, but not accepted by this Server"
//     (OnPublish sends it in order with the other acks; the connection stays, and the
//     topic never becomes a topic alias). MQTT 3.1.1 has no refusing PUBACK: the
//     server "MUST either make a positive acknowledgement ... or close the Network
//     Connection" [MQTT-3.3.5-2], and a positive one would tell the device its
//     reading was kept: the connection is closed, as mochi does for an ACL refusal.
//   - A topic mochi drops without a word (one starting with $SYS, or a bare $share):
//     a QoS 1 client would wait for its PUBACK for ever. Topics starting with $ are
//     the server's [MQTT-4.7.2-1], and hearth's ACL refuses every other $ topic, so
//     these get the ACL's answer: MQTT 5 PUBACK 0x87 (not authorized), MQTT 3.1.1
//     the connection closed; counted as denied.
//   - QoS 2 from an MQTT 5 client, which was told Maximum QoS 1 in its CONNACK: a
//     protocol error, answered DISCONNECT 0x9B (QoS not supported) [MQTT-3.2.2-11].
//     MQTT 3.1.1 cannot tell a client its maximum QoS, so its QoS 2 publishes are
//     served in full (mochi lowers them to QoS 1 before OnPublish; the QoS sent is
//     kept here for OnPublish).
//   - A wildcard in the topic: mochi refuses it (MQTT 5: DISCONNECT 0x82, and the
//     connection closes); it is counted here.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	b := h.b
	v5 := cl.Properties.ProtocolVersion == 5
	t := pk.TopicName
	switch {
	case strings.ContainsAny(t, "+#"):
		b.m.publishes.WithLabelValues("topic_invalid").Inc()
		b.logLimited("publish to a wildcard topic: client disconnected", "client", cl.ID, "topic", truncate(t, 128))
		return pk, nil
	case v5 && pk.FixedHeader.Qos == 2:
		b.m.publishes.WithLabelValues("qos_unsupported").Inc()
		b.logLimited("QoS 2 publish from an MQTT 5 client told Maximum QoS 1: client disconnected (0x9B)", "client", cl.ID)
		_ = b.srv.DisconnectClient(cl, packets.ErrQosNotSupported)
		return pk, packets.ErrRejectPacket
	case !mqtt.IsValidFilter(t, true):
		b.m.publishes.WithLabelValues("denied").Inc()
		b.logLimited("publish to a server topic refused", "client", cl.ID, "topic", truncate(t, 128))
		if !v5 {
			return pk, packets.ErrRejectPacket
		}
		if pk.FixedHeader.Qos > 0 { // mochi drops it; its PUBACK 0x87 goes out in order
			st := b.state(cl)
			ref := refOf(&pk)
			if seq, ok := b.reserve(st, ref); ok {
				b.complete(st, seq, ref, packets.ErrNotAuthorized, true)
			}
		}
		return pk, nil
	case b.topicRefused(t):
		if v5 {
			pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false // refused in OnPublish
			break
		}
		b.m.publishes.WithLabelValues("topic_invalid").Inc()
		b.logLimited("publish topic too long or too deep: client disconnected", "client", cl.ID, "topic", truncate(t, 128),
			"max_topic_bytes", b.opts.MaxTopicBytes, "max_topic_levels", b.opts.MaxTopicLevels)
		return pk, packets.ErrRejectPacket
	}
	b.state(cl).sentQoS = pk.FixedHeader.Qos
	return pk, nil
}

// topicRefused reports whether a published topic is longer or deeper than allowed.
func (b *Broker) topicRefused(t string) bool {
	return len(t) > b.opts.MaxTopicBytes || strings.Count(t, "/")+1 > b.opts.MaxTopicLevels
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.m.publishes.WithLabelValues("oversized").Inc()
	}
	h.b.clientMu.Lock()
	st := h.b.states[cl]
	delete(h.b.states, cl)
	h.b.clientMu.Unlock()
	if st != nil {
		st.stop()
	}
}

// clientState is what the broker keeps per connection: the publishes awaiting
// commit (at most MaxInflight; the read loop of the client waits beyond that), the
// acks to write, and the publish-rate bucket.
type clientState struct {
	cl   *mqtt.Client
	sem  chan struct{} // one token per publish awaiting commit or its ack write
	done chan struct{}
	once sync.Once

	// The client's publishes awaiting their outcome, in the order received: slot
	// seq is ring[seq%len(ring)], from head (the oldest) to next. A PUBACK goes out
	// only when every earlier publish has had its own (MQTT-4.6.0-2): a refusal
	// decided at once waits behind publishes still being committed.
	mu      sync.Mutex
	ring    []ackSlot // len MaxInflight: sem bounds the slots in use
	head    uint64
	next    uint64
	flusher bool // a writeAcks goroutine runs for this client

	tokens float64 // rate bucket; touched only by the client's read loop
	last   time.Time

	sentQoS byte // the QoS of the publish being read, as the client sent it (read loop only)
}

func (st *clientState) stop() { st.once.Do(func() { close(st.done) }) }

// ackSlot is one publish awaiting its outcome: a few bytes per slot, where a queued
// packets.Packet took 800 (64 slots a client: 50 KB each, 10 MB for 200 devices).
type ackSlot struct {
	id    uint16
	qos2  bool         // the ack is a PUBREC (MQTT 3.1.1 QoS 2), else a PUBACK
	code  packets.Code // reason (MQTT 5); Code 0 is success
	ready bool         // the outcome is known
	write bool         // an ack is to be written (none for QoS 0, nor for some refusals under MQTT 3.1.1)
}

// packet builds the ack for a client of protocol version v.
func (a ackSlot) packet(v byte) packets.Packet {
	typ := byte(packets.Puback)
	if a.qos2 {
		typ = packets.Pubrec
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: a.id}
	if v == 5 {
		ack.ReasonCode = a.code.Code
		if a.code.Code >= 0x80 {
			ack.Properties.ReasonString = a.code.Reason
		}
	}
	return ack
}

// reserve takes a slot for a publish, in the order the client's read loop receives
// them, waiting while MaxInflight publishes of the client await their outcome (the
// broker then stops reading that client: back-pressure, also on a flood of refused
// publishes). ok is false if the client is gone.
func (b *Broker) reserve(st *clientState, ref pubRef) (seq uint64, ok bool) {
	select {
	case st.sem <- struct{}{}:
	case <-st.done:
		return 0, false
	}
	st.mu.Lock()
	seq = st.next
	st.next++
	st.ring[seq%uint64(len(st.ring))] = ackSlot{id: ref.id, qos2: ref.qos == 2}
	st.mu.Unlock()
	return seq, true
}

// complete records the outcome of publish seq: MQTT 5 clients get code as the reason
// of its PUBACK; an MQTT 3.1.1 client, whose PUBACK carries no reason, gets one only
// when v3 is true; a QoS 0 publish gets none. PUBACKs are written in order by one
// goroutine per client that runs only while the client has outcomes to write: a
// client that stops reading blocks only its own writer, never the store's commit
// callback; acks that are ready together go out in one write (a group commit
// completes many publishes at once, and one syscall per PUBACK was the broker's
// largest CPU cost); and an idle device costs no goroutine.
func (b *Broker) complete(st *clientState, seq uint64, ref pubRef, code packets.Code, v3 bool) {
	write := ref.qos > 0 && (st.cl.Properties.ProtocolVersion == 5 || v3)
	st.mu.Lock()
	sl := &st.ring[seq%uint64(len(st.ring))]
	sl.code, sl.ready, sl.write = code, true, write
	start := seq == st.head && !st.flusher
	if start {
		st.flusher = true
	}
	st.mu.Unlock()
	if start {
		go b.writeAcks(st)
	}
}

// writeAcks writes the PUBACKs of st's publishes from the oldest while their outcomes
// are known, then ends.
func (b *Broker) writeAcks(st *clientState) {
	var (
		buf   []byte
		batch []ackSlot
	)
	v := st.cl.Properties.ProtocolVersion
	for {
		batch = batch[:0]
		st.mu.Lock()
		for st.head < st.next {
			sl := &st.ring[st.head%uint64(len(st.ring))]
			if !sl.ready {
				break
			}
			batch = append(batch, *sl)
			st.head++
		}
		if len(batch) == 0 {
			st.flusher = false
			st.mu.Unlock()
			return
		}
		st.mu.Unlock()

		buf = buf[:0]
		for _, ack := range batch {
			switch {
			case !ack.write:
			case ack.qos2:
				// QoS 2 (MQTT 3.1.1 only): mochi keeps the PUBREC in the session's
				// inflight table until the PUBREL, answers that with PUBCOMP, and
				// answers a PUBLISH sent again with this packet id with a PUBREC
				// without handing it to OnPublish: stored once [MQTT-4.3.3-10].
				b.awaitPubrel(st.cl, ack.id)
				buf = append(buf, packets.Pubrec<<4, 2, byte(ack.id>>8), byte(ack.id))
			case v != 5 || ack.code.Code == 0:
				// A success PUBACK without properties: 4 bytes in MQTT 3.1.1 and 5
				// (MQTT 5 allows leaving out reason 0x00 with no properties).
				buf = append(buf, packets.Puback<<4, 2, byte(ack.id>>8), byte(ack.id))
			default:
				b.flushAcks(st, buf)
				buf = buf[:0]
				if err := st.cl.WritePacket(ack.packet(v)); err != nil && !b.closing.Load() {
					b.logLimited("write PUBACK failed", "client", st.cl.ID, "err", err)
				}
			}
		}
		b.flushAcks(st, buf)
		for range batch {
			<-st.sem
		}
	}
}

// flushAcks writes encoded acks to the client's connection under the client's own
// lock (the one mochi's WritePacket takes), so they never interleave with its writes.
// mochi buffers a write only while it has publishes queued for the client; hearth
// forwards no publish to devices (OnPublish hands every one back as handled), only a
// device's own will (see OnConnectAuthenticate), so mochi's buffer is nearly always
// empty; when it is not, it holds whole packets, and these acks go out before them.
func (b *Broker) flushAcks(st *clientState, buf []byte) {
	if len(buf) == 0 || st.cl.Net.Conn == nil {
		return
	}
	st.cl.Lock()
	_, err := st.cl.Net.Conn.Write(buf)
	st.cl.Unlock()
	if err != nil && !b.closing.Load() {
		b.logLimited("write PUBACK failed", "client", st.cl.ID, "err", err)
	}
}

// awaitPubrel records in cl's session that a PUBREC for id is sent and its PUBREL awaited.
func (b *Broker) awaitPubrel(cl *mqtt.Client, id uint16) {
	rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id, Created: time.Now().Unix()}
	if cl.State.Inflight.Set(rec) {
		atomic.AddInt64(&b.srv.Info.Inflight, 1)
	}
}

func (b *Broker) state(cl *mqtt.Client) *clientState {
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	st, ok := b.states[cl]
	if !ok {
		st = &clientState{cl: cl, sem: make(chan struct{}, b.opts.MaxInflight), ring: make([]ackSlot, b.opts.MaxInflight),
			done: make(chan struct{}), tokens: float64(b.opts.PublishBurst), last: b.now()}
		b.states[cl] = st
	}
	return st
}

// allow takes one token from the client's publish-rate bucket.
func (b *Broker) allow(st *clientState, now time.Time) bool {
	st.tokens = min(float64(b.opts.PublishBurst), st.tokens+now.Sub(st.last).Seconds()*b.opts.PublishRate)
	st.last = now
	if st.tokens < 1 {
		return false
	}
	st.tokens--
	return true
}

// OnPublish decodes a publish and hands it to the sink. It always returns it
// handled (see handled) so that mochi neither acknowledges nor forwards it: the PUBACK
// (for QoS 2, the PUBREC) is written here once the store reports the readings durable.
// A refusal that may pass (Options.Retryable: a full store) is a PUBACK with reason
// 0x97 (quota exceeded) or 0x80 for MQTT 5, and no PUBACK at all for MQTT 3.1.1 (the
// client sends it again later). A refusal for good (a reading ingest can never take)
// is acknowledged and counted as rejected: MQTT 5 with reason 0x99 (payload format
// invalid; 0x83 for other final refusals), MQTT 3.1.1 with a plain PUBACK, so that the
// device does not send it for ever. A message some of whose fields cannot be read
// (a *mqtt.FieldErrors from the decoder) has its other readings stored.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return pk, nil
	}
	st := b.state(cl)
	ref := refOf(&pk)
	if st.sentQoS == 2 { // MQTT 3.1.1 (OnPacketRead): mochi lowered it to QoS 1
		ref.qos = 2
		if cl.State.Inflight.Len() >= b.opts.MaxInflight {
			// max_inflight QoS 2 publishes already await their PUBREL: the client
			// keeps a window larger than the broker's (MQTT 3.1.1 has no way to say
			// so but closing the connection).
			b.m.publishes.WithLabelValues("too_many_inflight").Inc()
			b.logLimited("QoS 2 publishes awaiting PUBREL beyond broker.max_inflight: client disconnected", "client", cl.ID)
			cl.Stop(packets.ErrReceiveMaximum)
			return handled(pk)
		}
	}
	seq, ok := b.reserve(st, ref)
	if !ok {
		return handled(pk) // disconnected while waiting for a slot
	}
	if b.topicRefused(pk.TopicName) { // MQTT 5 only: OnPacketRead closed an MQTT 3.1.1 client
		b.m.publishes.WithLabelValues("topic_invalid").Inc()
		b.logLimited("publish topic too long or too deep: refused (0x90)", "client", cl.ID, "topic", truncate(pk.TopicName, 128),
			"max_topic_bytes", b.opts.MaxTopicBytes, "max_topic_levels", b.opts.MaxTopicLevels)
		b.complete(st, seq, ref, packets.ErrTopicNameInvalid, true)
		return handled(pk)
	}
	now := b.now()
	if !b.allow(st, now) {
		b.m.publishes.WithLabelValues("rate_limited").Inc()
		b.logLimited("client publishes faster than broker.publish_rate: refused", "client", cl.ID)
		b.complete(st, seq, ref, packets.ErrQuotaExceeded, false)
		return handled(pk)
	}
	rs, err := b.h.Handle(pk.TopicName, pk.Payload, now)
	var fe *devmqtt.FieldErrors
	if errors.As(err, &fe) && len(rs) > 0 {
		// Some fields could not be read ("temperature":"warm"): they never will be,
		// and the others are stored, as the external source does.
		b.m.fields.Add(float64(len(fe.Fields)))
		b.logLimited("publish fields not readable: stored the others", "client", cl.ID, "topic", truncate(pk.TopicName, 128), "err", err)
		err = nil
	}
	if err != nil {
		reason := devmqtt.Reason(err)
		code := packets.ErrPayloadFormatInvalid
		switch reason {
		case "unknown_device":
			code = packets.ErrNotAuthorized
		case "unknown_topic":
			code = packets.ErrTopicNameInvalid
		case "limit":
			code = packets.ErrQuotaExceeded
		}
		b.m.publishes.WithLabelValues(reason).Inc()
		b.logLimited("publish refused", "client", cl.ID, "topic", truncate(pk.TopicName, 128), "err", err)
		// Malformed data will never become valid by sending it again: acknowledge it
		// as handled (MQTT 5: with the reason) so that a broken device does not loop
		// on it. It is counted, never stored.
		b.complete(st, seq, ref, code, true)
		return handled(pk)
	}
	for i := range rs {
		if rs[i].Device != string(cl.Properties.Username) {
			b.m.publishes.WithLabelValues("denied").Inc()
			b.complete(st, seq, ref, packets.ErrNotAuthorized, true)
			return handled(pk)
		}
	}
	if len(rs) == 0 {
		// Availability, an empty retained message, a bridge topic: nothing to keep.
		b.m.publishes.WithLabelValues("ignored").Inc()
		b.complete(st, seq, ref, packets.CodeSuccess, true)
		return handled(pk)
	}
	b.m.payloadBytes.Add(float64(len(pk.Payload)))
	n := len(rs)
	b.opts.Sink.Submit(rs, func(err error) {
		switch {
		case err == nil:
			b.m.pubCommitted.Inc()
			b.m.readCommitted.Add(float64(n))
			b.complete(st, seq, ref, packets.CodeSuccess, true)
		case b.opts.Retryable(err):
			// It may pass later (a full store): not acknowledged, so that the device
			// keeps the readings and sends them again.
			b.m.publishes.WithLabelValues("refused").Inc()
			b.m.readings.WithLabelValues("refused").Add(float64(n))
			b.logLimited("store refused readings for now: not acknowledged", "client", cl.ID, "err", err)
			code := packets.ErrUnspecifiedError
			if errors.Is(err, store.ErrQuota) {
				code = packets.ErrQuotaExceeded
			}
			b.complete(st, seq, ref, code, false) // never acknowledged to an MQTT 3.1.1 client
		default:
			// It can never be stored (a timestamp in the year 2201): sent again, it
			// would be refused again, for ever, and hold up what the device sends
			// after it. Acknowledged (MQTT 5: with the reason) and counted.
			b.m.publishes.WithLabelValues("rejected").Inc()
			b.m.readings.WithLabelValues("rejected").Add(float64(n))
			b.logLimited("readings rejected for good: acknowledged so that the device does not send them again", "client", cl.ID,
				"topic", truncate(pk.TopicName, 128), "err", err)
			code := packets.ErrImplementationSpecificError
			if errors.Is(err, ingest.ErrRejected) {
				code = packets.ErrPayloadFormatInvalid
			}
			b.complete(st, seq, ref, code, true)
		}
	})
	return handled(pk)
}

// handled tells mochi that hearth has taken a publish: mochi must neither acknowledge
// it (hearth writes the PUBACK once the store has committed the readings) nor forward
// nor retain it. A packet marked Ignore at QoS 0 takes that path in mochi's
// processPublish: no ack for QoS 0, no forwarding or retaining when Ignore is set.
// Returning packets.ErrRejectPacket does the same, but mochi's hook chain then logs
// the rejection at debug level with the whole 800-byte packet as an argument, built
// even when debug is off: a heap copy of every publish (a fifth of all allocation in
// a burst). TestAckOnlyAfterCommit and TestPublishNeitherForwardedNorRetained catch mochi acknowledging early.
func handled(pk packets.Packet) (packets.Packet, error) {
	pk.Ignore = true
	pk.FixedHeader.Qos = 0
	pk.FixedHeader.Retain = false
	return pk, nil
}

// pubRef is what an ack needs of its publish. The commit callback keeps this, not the
// packet: capturing the whole packets.Packet made every publish copy it to the heap.
type pubRef struct {
	id  uint16
	qos byte
}

func refOf(pk *packets.Packet) pubRef { return pubRef{id: pk.PacketID, qos: pk.FixedHeader.Qos} }

// logLimited logs at most one warning a second, so a flooding device cannot flood
// the log; the metrics count every event.
func (b *Broker) logLimited(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := b.lastLog.Load()
	if now-last < int64(time.Second) || !b.lastLog.CompareAndSwap(last, now) {
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
