package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/native"
	"github.com/hearth-iot/hearth/device/mqtt/tasmota"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
	"github.com/hearth-iot/hearth/internal/poll"
)

func init() {
	// Tests hash many passwords under the race detector: bcrypt's minimum cost keeps
	// them quick; the algorithm and the checks are the same.
	bcryptCost = 4
}

// waitFor is poll.Until: the one way these tests wait.
var waitFor = poll.Until

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not in PATH: run `make deps` (Debian package mosquitto-clients)", name)
	}
	return p
}

// rig is a broker on 127.0.0.1 with a real store behind it.
type rig struct {
	t     testing.TB
	b     *Broker
	st    *store.Store
	reg   *prometheus.Registry
	creds *Credentials
	addr  string
	pw    map[string]string
}

func newRig(t testing.TB, o Options, sink func(*store.Store) device.Sink) *rig {
	t.Helper()
	reg := prometheus.NewRegistry()
	st, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), &store.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, reg: reg, creds: NewCredentials(), pw: map[string]string{}}
	for dev, kind := range map[string]device.Kind{"fridge1": device.KindFridge, "plug1": device.KindPlug, "washer1": device.KindWasher} {
		_, pw, err := r.creds.Add(dev, kind)
		if err != nil {
			t.Fatal(err)
		}
		r.pw[dev] = pw
	}
	if o.Handler == nil {
		ms := devmqtt.Mappings{
			{Source: devmqtt.SourceZigbee2MQTT, Name: "Fridge door", Device: "fridge1", Kind: device.KindFridge},
			{Source: devmqtt.SourceTasmota, Name: "pow1", Device: "plug1", Kind: device.KindPlug},
		}
		z2m, err := zigbee2mqtt.New(ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		tas, err := tasmota.New(ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Handler = devmqtt.Adapters{Decoder: devmqtt.Router{native.JSON{KindOf: r.creds.Kind}, z2m, tas}}
	}
	if w, ok := o.Auth.(authWrapper); ok {
		o.Auth = w.wrap(r.creds)
	} else {
		o.Auth = r.creds
	}
	o.Sink = st
	if sink != nil {
		o.Sink = sink(st)
	}
	o.Registerer = r.reg
	if r.b, err = New(o); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	if err := r.b.Serve(ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.b.Close()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func (r *rig) port() string { _, p, _ := net.SplitHostPort(r.addr); return p }

// pub runs mosquitto_pub against the rig and returns its combined output and error.
func (r *rig) pub(args ...string) (string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, needTool(r.t, "mosquitto_pub"), append([]string{"-h", "127.0.0.1", "-p", r.port()}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *rig) pubAs(dev string, args ...string) (string, error) {
	return r.pub(append([]string{"-u", dev, "-P", r.pw[dev], "-i", dev + "-" + fmt.Sprint(time.Now().UnixNano())}, args...)...)
}

// count returns the value of a counter with one label value.
func (r *rig) count(name, label string) float64 { return gathered(r.t, r.reg, name, label) }

func (r *rig) readings() []device.Reading {
	var out []device.Reading
	if _, err := r.st.ReadEvents(0, 100000, func(_ uint64, x *device.Reading) error {
		out = append(out, *x)
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return out
}

func TestMosquittoPubRealPayloads(t *testing.T) {
	r := newRig(t, Options{}, nil)
	cases := []struct {
		dev, topic, payload string
		want                []device.Reading
	}{
		{"fridge1", "hearth/v1/fridge1/readings", `{"signal":"door","value":1,"boot":3,"seq":1}`,
			[]device.Reading{{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1}}},
		// Zigbee2MQTT: contact false means the door is open.
		{"fridge1", "zigbee2mqtt/Fridge door", `{"battery":100,"contact":false,"device_temperature":26,"linkquality":153,"power_outage_count":6889,"voltage":3035}`,
			[]device.Reading{{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalBattery, Value: 100},
				{Device: "fridge1", Kind: device.KindFridge, Signal: device.SignalDoor, Value: 1}}},
		{"plug1", "tele/pow1/SENSOR", `{"Time":"2018-02-15T17:37:10","ENERGY":{"TotalStartTime":"2018-11-14T18:39:40","Total":6.294,"Yesterday":5.340,"Today":0.954,"Period":217,"Power":2635,"ApparentPower":2650,"ReactivePower":282,"Factor":0.99,"Voltage":227,"Current":11.661}}`,
			[]device.Reading{{Device: "plug1", Kind: device.KindPlug, Signal: device.SignalEnergy, Value: 6.294},
				{Device: "plug1", Kind: device.KindPlug, Signal: device.SignalPower, Value: 2635}}},
	}
	want := 0
	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, c := range cases {
			if out, err := r.pubAs(c.dev, "-V", v, "-q", "1", "-t", c.topic, "-m", c.payload); err != nil {
				t.Fatalf("%s %s: %v: %s", v, c.topic, err, out)
			}
			want += len(c.want)
		}
	}
	// mosquitto_pub returned after its PUBACK: the readings are already committed.
	got := r.readings()
	if len(got) != want-1 { // the native reading carries boot 3 seq 1: its second copy is a duplicate
		t.Fatalf("store holds %d readings, want %d: %+v", len(got), want-1, got)
	}
	find := func(w device.Reading) bool {
		for _, g := range got {
			if g.Device == w.Device && g.Kind == w.Kind && g.Signal == w.Signal && g.Value == w.Value {
				return true
			}
		}
		return false
	}
	for _, c := range cases {
		for _, w := range c.want {
			if !find(w) {
				t.Errorf("%s: no reading %s/%s/%s=%v in the store", c.topic, w.Device, w.Kind, w.Signal, w.Value)
			}
		}
	}
	if n := r.count("hearth_broker_publishes_total", "committed"); n != 6 {
		t.Errorf("committed publishes = %v, want 6", n)
	}
}

func TestRefusalsAreCountedAndOthersServed(t *testing.T) {
	r := newRig(t, Options{MaxPacketBytes: 4096, LockoutFailures: 100}, nil)
	type refusal struct {
		name   string
		args   []string
		metric string
		label  string
		failed bool // mosquitto_pub exits non-zero
	}
	deep := strings.Repeat("a/", 20) + "b"
	big := strings.Repeat("x", 8000)
	fridge := func(a ...string) []string {
		return append([]string{"-u", "fridge1", "-P", r.pw["fridge1"], "-V", "mqttv5", "-q", "1"}, a...)
	}
	native := "hearth/v1/fridge1/readings"
	cases := []refusal{
		{"no credentials", []string{"-q", "1", "-t", native, "-m", `{"signal":"door","value":1}`}, "hearth_broker_connects_total", "no_credentials", true},
		{"wrong password", []string{"-u", "fridge1", "-P", "not-it", "-q", "1", "-t", native, "-m", `{"signal":"door","value":1}`}, "hearth_broker_connects_total", "bad_credentials", true},
		{"unknown user", []string{"-u", "nobody", "-P", "x", "-q", "1", "-t", native, "-m", `{"signal":"door","value":1}`}, "hearth_broker_connects_total", "bad_credentials", true},
		{"another device's topic", fridge("-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":1}`), "hearth_broker_publishes_total", "denied", false},
		{"another device's mapped topic", fridge("-t", "tele/pow1/SENSOR", "-m", `{"ENERGY":{"Power":5}}`), "hearth_broker_publishes_total", "denied", false},
		{"oversized packet", fridge("-t", native, "-m", big), "hearth_broker_publishes_total", "oversized", true},
		{"malformed JSON", fridge("-t", native, "-m", `{"signal":"door","value":`), "hearth_broker_publishes_total", "malformed", false},
		{"wrong type", fridge("-t", native, "-m", `{"signal":"door","value":"open"}`), "hearth_broker_publishes_total", "malformed", false},
		{"NaN", fridge("-t", native, "-m", `{"signal":"temperature","value":NaN}`), "hearth_broker_publishes_total", "malformed", false},
		{"huge number", fridge("-t", native, "-m", `{"signal":"temperature","value":1e300}`), "hearth_broker_publishes_total", "malformed", false},
		{"unknown signal", fridge("-t", native, "-m", `{"signal":"mood","value":1}`), "hearth_broker_publishes_total", "malformed", false},
		{"unmapped device", fridge("-t", "zigbee2mqtt/Somebody else", "-m", `{"contact":true}`), "hearth_broker_publishes_total", "unknown_device", false},
		{"topic nobody reads", fridge("-t", "random/stuff", "-m", `1`), "hearth_broker_publishes_total", "unknown_topic", false},
		{"very deep topic", fridge("-t", deep, "-m", `1`), "hearth_broker_publishes_total", "topic_invalid", false},
	}
	for _, c := range cases {
		before := r.count(c.metric, c.label)
		out, err := r.pub(c.args...)
		if c.failed && err == nil {
			t.Errorf("%s: mosquitto_pub succeeded, want a refusal: %s", c.name, out)
		}
		if !c.failed && err != nil && !strings.Contains(out, "not authorised") && !strings.Contains(out, "format") {
			t.Logf("%s: %v: %s", c.name, err, out)
		}
		waitFor(t, c.name+" counted as "+c.label, 5*time.Second, func() bool { return r.count(c.metric, c.label) > before })
	}
	// The broker still serves a well-behaved device.
	if out, err := r.pubAs("plug1", "-q", "1", "-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":42}`); err != nil {
		t.Fatalf("good publish after the refusals: %v: %s", err, out)
	}
	found := false
	for _, rd := range r.readings() {
		found = found || rd.Device == "plug1" && rd.Value == 42
	}
	if !found {
		t.Error("the good publish is not in the store")
	}
}

func TestLockout(t *testing.T) {
	r := newRig(t, Options{LockoutFailures: 3, LockoutWindow: time.Hour}, nil)
	for range 3 {
		if _, err := r.pub("-u", "fridge1", "-P", "guess", "-q", "1", "-t", "hearth/v1/fridge1/readings", "-m", "{}"); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	// Now even the right password is refused from this address.
	if out, err := r.pubAs("fridge1", "-q", "1", "-t", "hearth/v1/fridge1/readings", "-m", `{"signal":"door","value":1}`); err == nil {
		t.Fatalf("locked-out address was let in: %s", out)
	}
	if n := r.count("hearth_broker_connects_total", "locked_out"); n != 1 {
		t.Errorf("locked_out = %v, want 1", n)
	}
	if len(r.readings()) != 0 {
		t.Error("a locked-out client's reading was stored")
	}
}

// ---- a raw MQTT client, to see exactly which packets the broker sends ----

type raw struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
	v5 bool
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func varint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func packet(typ byte, body []byte) []byte {
	return append(varint([]byte{typ}, len(body)), body...)
}

func dialRaw(t *testing.T, addr, user, pw string, v5 bool) *raw {
	t.Helper()
	return dial(t, addr, user, pw, v5, nil)
}

// dial connects as user, with a will (QoS 1, not retained: topic, payload) if will is
// set, and waits for a successful CONNACK.
func dial(t *testing.T, addr, user, pw string, v5 bool, will *[2]string) *raw {
	t.Helper()
	r, code := connect(t, addr, user, pw, connOpts{v5: v5, will: will})
	if code != 0 {
		t.Fatalf("CONNACK %s: return code %#x", user, code)
	}
	return r
}

// connOpts are the choices of connect beyond the credentials.
type connOpts struct {
	v5       bool
	will     *[2]string // will topic and payload (QoS 1, not retained)
	from     string     // local address to connect from (any of 127/8), "" for the default
	clientID string     // "" for user+"-raw" (user+"-will" with a will)
}

// connect dials addr from o.from, sends a CONNECT as user (no user name when user is
// ""), and returns the connection and the CONNACK's return code, or -1 when the
// broker closed the connection without one.
func connect(t *testing.T, addr, user, pw string, o connOpts) (*raw, int) {
	t.Helper()
	c := dialFrom(t, addr, o.from)
	r := &raw{t: t, c: c, rd: bufio.NewReader(c), v5: o.v5}
	level := byte(4)
	if o.v5 {
		level = 5
	}
	flags, id := byte(0xC2), user+"-raw" // user, password, clean start
	if user == "" {
		flags = 0x02
	}
	if o.will != nil {
		flags, id = flags|0x04|0x08, user+"-will" // will flag, will QoS 1
	}
	if o.clientID != "" {
		id = o.clientID
	}
	body := mqttString(nil, "MQTT")
	body = append(body, level, flags, 0, 60) // keep-alive 60s
	if o.v5 {
		body = append(body, 0) // no properties
	}
	body = mqttString(body, id)
	if o.will != nil {
		if o.v5 {
			body = append(body, 0) // no will properties
		}
		body = mqttString(body, o.will[0])
		body = mqttString(body, o.will[1])
	}
	if user != "" {
		body = mqttString(body, user)
		body = mqttString(body, pw)
	}
	r.write(packet(0x10, body))
	typ, p, err := r.next()
	if err != nil {
		return r, -1
	}
	if typ != 0x20 || len(p) < 2 {
		t.Fatalf("CONNECT %s: got packet %#x %x, want CONNACK", user, typ, p)
	}
	return r, int(p[1])
}

// dialFrom opens a TCP connection to addr from the local address from ("" for any),
// closed when the test ends.
func dialFrom(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *raw) write(b []byte) {
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next packet; the deadline only guards against a hung test.
func (r *raw) read() (byte, []byte) {
	r.t.Helper()
	typ, p, err := r.next()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return typ, p
}

// next is read, returning the error (io.EOF: the broker closed the connection).
func (r *raw) next() (byte, []byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := r.rd.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		d, err := r.rd.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r.rd, p); err != nil {
		return 0, nil, err
	}
	return h & 0xF0, p, nil
}

func (r *raw) publish(id uint16, topic, payload string) {
	body := mqttString(nil, topic)
	body = binary.BigEndian.AppendUint16(body, id)
	if r.v5 {
		body = append(body, 0)
	}
	r.write(packet(0x32, append(body, payload...)))
}

// ping sends PINGREQ and returns the packets that arrive before its PINGRESP: mochi
// answers a client's packets in order, so whatever was sent before the ping is
// either among them or was never sent.
func (r *raw) ping() [][]byte {
	r.write([]byte{0xC0, 0})
	var before [][]byte
	for {
		typ, p := r.read()
		if typ == 0xD0 {
			return before
		}
		before = append(before, append([]byte{typ}, p...))
	}
}

// gate is a sink that holds every submission until the test lets it through or fails it.
type gate struct {
	next device.Sink
	mu   sync.Mutex
	held []func(error)
	rs   [][]device.Reading
}

func (g *gate) Submit(rs []device.Reading, done func(error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rs = append(g.rs, rs)
	g.held = append(g.held, done)
}

func (g *gate) pending() int { g.mu.Lock(); defer g.mu.Unlock(); return len(g.held) }

// release completes the oldest held submission: committed to the real store, or failed.
func (g *gate) release(fail error) {
	g.mu.Lock()
	done, rs := g.held[0], g.rs[0]
	g.held, g.rs = g.held[1:], g.rs[1:]
	g.mu.Unlock()
	if fail != nil {
		done(fail)
		return
	}
	g.next.Submit(rs, done)
}

func TestAckOnlyAfterCommit(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5], func(t *testing.T) {
			var g *gate
			r := newRig(t, Options{}, func(st *store.Store) device.Sink { g = &gate{next: st}; return g })
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			topic := "hearth/v1/fridge1/readings"

			// 1. Held commit: no PUBACK.
			c.publish(1, topic, `{"signal":"door","value":1,"boot":1,"seq":1}`)
			waitFor(t, "the sink to hold the publish", 5*time.Second, func() bool { return g.pending() == 1 })
			if got := c.ping(); len(got) != 0 {
				t.Fatalf("broker sent %x before the reading was committed", got)
			}
			// 2. The store fails it (quota): MQTT 5 gets 0x97, MQTT 3.1.1 nothing.
			g.release(fmt.Errorf("store: %w", store.ErrQuota))
			if v5 {
				typ, p := c.read()
				if typ != 0x40 || binary.BigEndian.Uint16(p) != 1 || len(p) < 3 || p[2] != 0x97 {
					t.Fatalf("after a quota refusal: packet %#x %x, want PUBACK id 1 reason 0x97", typ, p)
				}
			} else if got := c.ping(); len(got) != 0 {
				t.Fatalf("MQTT 3.1.1 client got %x for a refused reading, want no PUBACK", got)
			}
			// An I/O failure: MQTT 5 gets 0x80.
			c.publish(2, topic, `{"signal":"door","value":0,"boot":1,"seq":2}`)
			waitFor(t, "the sink to hold the second publish", 5*time.Second, func() bool { return g.pending() == 1 })
			g.release(fmt.Errorf("store: %w", store.ErrIntakeStopped))
			if v5 {
				typ, p := c.read()
				if typ != 0x40 || binary.BigEndian.Uint16(p) != 2 || len(p) < 3 || p[2] != 0x80 {
					t.Fatalf("after an I/O refusal: packet %#x %x, want PUBACK id 2 reason 0x80", typ, p)
				}
			} else if got := c.ping(); len(got) != 0 {
				t.Fatalf("MQTT 3.1.1 client got %x for a refused reading, want no PUBACK", got)
			}
			if n := len(r.readings()); n != 0 {
				t.Fatalf("%d refused readings in the store", n)
			}
			// 3. Committed: PUBACK success, and the reading is in the store before it.
			c.publish(3, topic, `{"signal":"door","value":1,"boot":1,"seq":3}`)
			waitFor(t, "the sink to hold the third publish", 5*time.Second, func() bool { return g.pending() == 1 })
			g.release(nil)
			typ, p := c.read()
			if typ != 0x40 || binary.BigEndian.Uint16(p) != 3 || (len(p) > 2 && p[2] != 0) {
				t.Fatalf("after commit: packet %#x %x, want PUBACK id 3 success", typ, p)
			}
			if rs := r.readings(); len(rs) != 1 || rs[0].Seq != 3 {
				t.Fatalf("store after the PUBACK: %+v, want the reading of seq 3", rs)
			}
			if n := r.count("hearth_broker_publishes_total", "refused"); n != 2 {
				t.Errorf("refused = %v, want 2", n)
			}
		})
	}
}

// Publishing to a wildcard topic is refused and counted (mochi alone drops it
// silently, leaving a QoS 1 client waiting for its PUBACK forever).
func TestWildcardPublishRefused(t *testing.T) {
	r := newRig(t, Options{}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	c.publish(1, "hearth/v1/fridge1/#", `{"signal":"door","value":1}`)
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c.rd) // the broker closes the connection (after a DISCONNECT 0x90)
	if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
	if n := r.count("hearth_broker_publishes_total", "topic_invalid"); n != 1 {
		t.Errorf("topic_invalid = %v, want 1", n)
	}
	if out, err := r.pubAs("plug1", "-q", "1", "-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":1}`); err != nil {
		t.Fatalf("broker stopped serving: %v %s", err, out)
	}
}

// mochi #501: a truncated MQTT 5 SUBSCRIBE. Whatever the library does with it, the
// broker goes on serving others.
func TestTruncatedSubscribeDoesNotStopTheBroker(t *testing.T) {
	r := newRig(t, Options{}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	// SUBSCRIBE, packet id 1, no properties, the filter "a/b" and no options byte:
	// mochi's decoder indexes the missing byte (a panic that used to end the process).
	c.write([]byte{0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x03, 'a', '/', 'b'})
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.ReadAll(c.rd)
	if out, err := r.pubAs("plug1", "-V", "mqttv5", "-q", "1", "-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":7}`); err != nil {
		t.Fatalf("broker stopped serving after a truncated SUBSCRIBE: %v %s", err, out)
	}
	if len(r.readings()) != 1 {
		t.Fatal("the publish after the truncated SUBSCRIBE is not in the store")
	}
	if n := r.count("hearth_broker_connects_total", "panic"); n != 1 {
		t.Errorf("connections ended by a panic = %v, want 1 (the packet no longer reaches mochi's faulty decoder?)", n)
	}
}

// The native schema also takes the firmware protocol's protobuf messages: a real
// mosquitto_pub sends a fwpb.Readings payload from a file.
func TestMosquittoPubProtobuf(t *testing.T) {
	r := newRig(t, Options{}, nil)
	r.b.h = devmqtt.Adapters{Decoder: devmqtt.Router{native.JSON{KindOf: r.creds.Kind}, native.Proto{KindOf: r.creds.Kind}}}
	payload, err := proto.Marshal(&fwpb.Readings{BootId: 9, Readings: []*fwpb.Reading{
		{Seq: 1, WallMs: time.Now().UnixMilli(), Signal: fwpb.Signal_SIGNAL_DOOR, Value: 1},
		{Seq: 2, WallMs: time.Now().UnixMilli(), Signal: fwpb.Signal_SIGNAL_TEMPERATURE, Value: 3.5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "readings.pb")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := r.pubAs("fridge1", "-q", "1", "-t", "hearth/v1/fridge1/readings/pb", "-f", file); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	got := r.readings()
	if len(got) != 2 || got[0].Signal != device.SignalDoor || got[1].Value != 3.5 || got[1].Unit != "°C" || got[0].Boot != 9 || got[1].Seq != 2 {
		t.Fatalf("store holds %+v", got)
	}
	// Garbage on a protobuf topic is refused and counted, never stored.
	if err := os.WriteFile(file, []byte{0xff, 0xff, 0xff, 0x01}, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _ = r.pubAs("fridge1", "-q", "1", "-t", "hearth/v1/fridge1/readings/pb", "-f", file)
	if n := r.count("hearth_broker_publishes_total", "malformed"); n != 1 {
		t.Errorf("malformed publishes = %v, want 1", n)
	}
	if len(r.readings()) != 2 {
		t.Error("garbage was stored")
	}
}

// Unauthenticated connections are bounded (mochi #502: it allocates what a CONNECT
// announces before reading it): past max_connecting, new ones are closed at once and
// counted; clients already authenticated keep being served; once the stalled ones go,
// new clients connect again.
func TestMaxConnecting(t *testing.T) {
	r := newRig(t, Options{MaxConnecting: 4, MaxConnectingPerSource: 2}, nil)
	served := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], false)
	var stalled []net.Conn
	for i := range 4 { // one from each of four sources: nobody holds more than another
		c := dialFrom(t, r.addr, fmt.Sprintf("127.0.0.%d", 2+i))
		if _, err := c.Write([]byte{0x10, 0xFA, 0xFF, 0x03, 0x00}); err != nil { // a CONNECT announcing ~64 KiB, never sent
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	// The listener accepts in order: the four were admitted before this one.
	c := dialFrom(t, r.addr, "127.0.0.9")
	if !closedByBroker(c) {
		t.Fatal("a connection beyond max_connecting was not closed")
	}
	if n := r.count("hearth_broker_connects_total", "too_many_connecting"); n != 1 {
		t.Errorf("too_many_connecting = %v, want 1", n)
	}
	served.publish(1, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`)
	if typ, _ := served.read(); typ>>4 != 4 {
		t.Fatalf("an authenticated client was not served while others stalled: packet type %d", typ>>4)
	}
	for _, c := range stalled {
		c.Close()
	}
	waitFor(t, "a new client to connect once the stalled ones closed", 5*time.Second, func() bool {
		_, err := r.pubAs("plug1", "-q", "1", "-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":5}`)
		return err == nil
	})
}

// A device's publish is hearth's to store, not a message to pass on: mochi must not
// forward it to a subscriber of the same topic (here the device itself, which its ACL
// lets subscribe below its own prefix), nor retain it for a later subscriber, and the
// only PUBACK is hearth's, after the commit.
func TestPublishNeitherForwardedNorRetained(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5], func(t *testing.T) {
			r := newRig(t, Options{}, nil)
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			topic := "hearth/v1/fridge1/readings"
			c.subscribe(1, "hearth/v1/fridge1/#")
			// Retain flag set (0x33: PUBLISH, QoS 1, retain).
			body := mqttString(nil, topic)
			body = binary.BigEndian.AppendUint16(body, 7)
			if v5 {
				body = append(body, 0)
			}
			c.write(packet(0x33, append(body, `{"signal":"door","value":1,"boot":1,"seq":1}`...)))
			typ, p := c.read()
			if typ != 0x40 || binary.BigEndian.Uint16(p) != 7 {
				t.Fatalf("first packet after the publish: %#x %x, want hearth's PUBACK for id 7", typ, p)
			}
			if rs := r.readings(); len(rs) != 1 {
				t.Fatalf("%d readings in the store after the PUBACK, want 1", len(rs))
			}
			if got := c.ping(); len(got) != 0 {
				t.Fatalf("the subscriber got %x: the publish was forwarded or acknowledged twice", got)
			}
			// A later subscriber gets no retained copy.
			c2 := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			c2.subscribe(1, "hearth/v1/fridge1/#")
			if got := c2.ping(); len(got) != 0 {
				t.Fatalf("a new subscriber got %x: the publish was retained", got)
			}
		})
	}
}

// subscribe sends SUBSCRIBE for filter at QoS 1 and waits for its SUBACK.
func (r *raw) subscribe(id uint16, filter string) {
	r.t.Helper()
	if code := r.subscribeCode(id, filter); code >= 0x80 {
		r.t.Fatalf("SUBSCRIBE %s refused: reason %#x", filter, code)
	}
}

// An agent stopped as it starts may Close its broker before the goroutine that
// Serves it runs: Serve must then close the listener, not start serving on it.
func TestServeAfterClose(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hearth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := New(Options{Auth: NewCredentials(), Sink: st})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(ln); err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatalf("the listener at %s accepts connections after the broker was closed", ln.Addr())
	}
}

// dialWill connects as user with a will (QoS 1, not retained) on willTopic.
func dialWill(t *testing.T, addr, user, pw, willTopic, willPayload string, v5 bool) *raw {
	t.Helper()
	return dial(t, addr, user, pw, v5, &[2]string{willTopic, willPayload})
}

// A will is a publish mochi sends on a device's behalf when its connection drops,
// without OnPublish or the ACL: a device must not get one delivered into another
// device's topics (which that device may subscribe to). Its will below its own
// prefix still reaches its own subscriber (so the test can see a delivered will).
func TestWillOnlyBelowOwnPrefix(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5], func(t *testing.T) {
			r := newRig(t, Options{}, nil)
			fridge := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			fridge.subscribe(1, "hearth/v1/fridge1/#")

			own := dialWill(t, r.addr, "fridge1", r.pw["fridge1"], "hearth/v1/fridge1/status", "gone", v5)
			other := dialWill(t, r.addr, "plug1", r.pw["plug1"], "hearth/v1/fridge1/cmd", "open the door", v5)
			waitFor(t, "three clients connected", 5*time.Second, func() bool { return r.b.Clients() == 3 })
			other.c.Close() // no DISCONNECT: the will is sent
			waitFor(t, "plug1's connection gone", 5*time.Second, func() bool { return r.b.Clients() == 2 })
			if got := fridge.ping(); len(got) != 0 {
				t.Fatalf("fridge1 got %q: plug1's will was delivered into fridge1's topics", got)
			}
			own.c.Close()
			waitFor(t, "the fridge's will connection gone", 5*time.Second, func() bool { return r.b.Clients() == 1 })
			got := fridge.ping()
			if len(got) != 1 || got[0][0] != 0x30 || !strings.Contains(string(got[0]), "gone") {
				t.Fatalf("fridge1 got %q, want its own will", got)
			}
			if n := r.count("hearth_broker_publishes_total", "denied"); n != 1 {
				t.Errorf("publishes denied = %v, want 1 (the dropped will)", n)
			}
		})
	}
}

// PUBACKs go out in the order the publishes came [MQTT-4.6.0-2]: a publish refused at
// once (malformed) is acknowledged only after an earlier one still being committed.
func TestPubacksInOrderOfPublishes(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5], func(t *testing.T) {
			var g *gate
			r := newRig(t, Options{}, func(st *store.Store) device.Sink { g = &gate{next: st}; return g })
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			topic := "hearth/v1/fridge1/readings"
			c.publish(1, topic, `{"signal":"door","value":1,"boot":1,"seq":1}`)
			waitFor(t, "the sink to hold the first publish", 5*time.Second, func() bool { return g.pending() == 1 })
			c.publish(2, topic, `{"signal":"door","value":`) // malformed: refused at once
			c.publish(3, topic, `{"signal":"door","value":0,"boot":1,"seq":2}`)
			waitFor(t, "the sink to hold the third publish", 5*time.Second, func() bool { return g.pending() == 2 })
			if got := c.ping(); len(got) != 0 {
				t.Fatalf("broker sent %x while publish 1 was not committed: a later publish was acknowledged first", got)
			}
			g.release(nil)
			g.release(nil)
			for _, want := range []uint16{1, 2, 3} {
				typ, p := c.read()
				if typ != 0x40 || binary.BigEndian.Uint16(p) != want {
					t.Fatalf("got packet %#x %x, want the PUBACK of publish %d", typ, p, want)
				}
				if v5 && want == 2 && (len(p) < 3 || p[2] != 0x99) {
					t.Errorf("PUBACK of the malformed publish: %x, want reason 0x99 (payload format invalid)", p)
				}
			}
			if n := len(r.readings()); n != 2 {
				t.Errorf("%d readings stored, want 2", n)
			}
		})
	}
}

// mochi's $SYS refresh (a runtime.ReadMemStats and 20 retained messages every
// SysTopicResendInterval seconds, 1 by default) is work for nobody: no client may
// subscribe below $SYS. The broker puts it off for good, and the refusal stands.
func TestSysTopicsNeverRefreshed(t *testing.T) {
	r := newRig(t, Options{}, nil)
	if got, min := r.b.srv.Options.SysTopicResendInterval, int64(100*365*24*3600); got < min {
		t.Fatalf("mochi's $SYS topics are refreshed every %ds, want never (at least %ds)", got, min)
	}
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], false)
	if code := c.subscribeCode(1, "$SYS/#"); code < 0x80 {
		t.Fatalf("SUBSCRIBE $SYS/# granted (%#x): its topics would have a reader", code)
	}
}
