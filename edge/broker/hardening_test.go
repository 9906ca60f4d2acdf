package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/store"
)

// fakeClock is the broker's clock in tests: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// authWrapper, as Options.Auth of newRig, wraps the rig's real credentials.
type authWrapper interface {
	Authenticator
	wrap(Authenticator) Authenticator
}

// heldAuth holds every password check until the test releases them, and records
// how many were in progress at once, in all and for each user name.
type heldAuth struct {
	next    Authenticator
	pass    atomic.Bool // checks go straight through while set
	release chan struct{}
	mu      sync.Mutex
	in      map[string]int
	most    map[string]int
	inAll   int
	mostAll int
}

func newHeldAuth() *heldAuth {
	return &heldAuth{release: make(chan struct{}), in: map[string]int{}, most: map[string]int{}}
}

func (h *heldAuth) wrap(a Authenticator) Authenticator { h.next = a; return h }

func (h *heldAuth) Authenticate(user string, pw []byte) (Identity, bool) {
	h.mu.Lock()
	h.in[user]++
	h.inAll++
	h.most[user] = max(h.most[user], h.in[user])
	h.mostAll = max(h.mostAll, h.inAll)
	h.mu.Unlock()
	if !h.pass.Load() {
		<-h.release
	}
	h.mu.Lock()
	h.in[user]--
	h.inAll--
	h.mu.Unlock()
	return h.next.Authenticate(user, pw)
}

// counts returns the checks in progress now and the most at once, for user ("" for all).
func (h *heldAuth) counts(user string) (now, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if user == "" {
		return h.inAll, h.mostAll
	}
	return h.in[user], h.most[user]
}

// halfOpen opens a connection from from that sends the start of a CONNECT announcing
// 127 bytes, and then nothing: a slowloris.
func halfOpen(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	c := dialFrom(t, addr, from)
	if _, err := c.Write([]byte{0x10, 0x7F, 0x00}); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByBroker reports whether the broker has closed c (a read ends in EOF or a reset).
func closedByBroker(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	return err == nil || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset")
}

func versionName(v5 bool) string { return map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5] }

// expectClosed checks that the broker closes the connection (after at most a
// DISCONNECT) with no other packet, and does not merely stay silent.
func (r *raw) expectClosed(what string) {
	r.t.Helper()
	for {
		typ, p, err := r.next()
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			r.t.Fatalf("%s: the connection stayed open without an answer", what)
		case err != nil:
			return
		case typ != 0xE0:
			r.t.Fatalf("%s: got packet %#x %x, want the connection closed", what, typ, p)
		}
	}
}

// publishQoS sends a PUBLISH of QoS qos (flags: 0x08 for DUP) with a v5 property
// block props (nil: none).
func (r *raw) publishQoS(qos, flags byte, id uint16, topic, payload string, props []byte) {
	body := mqttString(nil, topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	if r.v5 {
		body = varint(body, len(props))
		body = append(body, props...)
	}
	r.write(packet(0x30|qos<<1|flags, append(body, payload...)))
}

// ack reads the next packet and checks it is an ack of type typ for id, with reason
// (MQTT 5; 0 for success, whether or not the broker wrote the byte).
func (r *raw) ack(typ byte, id uint16, reason byte) {
	r.t.Helper()
	got, p := r.read()
	if got != typ || len(p) < 2 || binary.BigEndian.Uint16(p) != id {
		r.t.Fatalf("got packet %#x %x, want %#x for packet id %d", got, p, typ, id)
	}
	code := byte(0)
	if len(p) > 2 {
		code = p[2]
	}
	if r.v5 && code != reason {
		r.t.Fatalf("%#x for packet id %d: reason %#x, want %#x", typ, id, code, reason)
	}
}

// subscribeCode sends SUBSCRIBE for filter at QoS 1 and returns the SUBACK's code.
func (r *raw) subscribeCode(id uint16, filter string) byte {
	r.t.Helper()
	body := binary.BigEndian.AppendUint16(nil, id)
	if r.v5 {
		body = append(body, 0)
	}
	body = append(mqttString(body, filter), 1)
	r.write(packet(0x82, body))
	typ, p := r.read()
	if typ != 0x90 || len(p) < 3 {
		r.t.Fatalf("SUBSCRIBE %s: got %#x %x, want SUBACK", filter, typ, p)
	}
	return p[len(p)-1]
}

// The publish-rate bucket runs on the broker's clock: exactly PublishBurst publishes
// at one instant, then PublishRate a second; the bucket never holds more than a burst.
func TestPublishRateBucket(t *testing.T) {
	clk := newClock()
	r := newRig(t, Options{PublishRate: 5, PublishBurst: 5, Now: clk.Now}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	seq := 0
	send := func(n int) {
		for range n {
			seq++
			c.publish(uint16(seq), "hearth/v1/fridge1/readings", fmt.Sprintf(`{"signal":"door","value":1,"boot":1,"seq":%d}`, seq))
		}
	}
	expect := func(from, ok, refused int) {
		t.Helper()
		for i := range ok + refused {
			reason := byte(0)
			if i >= ok {
				reason = 0x97
			}
			c.ack(0x40, uint16(from+i), reason)
		}
	}
	send(8) // a burst of 5 at one instant, then nothing left
	expect(1, 5, 3)
	clk.Advance(400 * time.Millisecond) // 2 tokens at 5/s
	send(3)
	expect(9, 2, 1)
	clk.Advance(time.Hour) // refilled, to the burst and no further
	send(7)
	expect(12, 5, 2)
	if n := r.count("hearth_broker_publishes_total", "rate_limited"); n != 6 {
		t.Errorf("rate_limited = %v, want 6", n)
	}
	if n := len(r.readings()); n != 12 {
		t.Errorf("%d readings stored, want 12", n)
	}
}

// A lock ends when lockout_window has passed on the broker's clock, not before; and
// failures further apart than the window never add up to a lock.
func TestLockoutExpires(t *testing.T) {
	clk := newClock()
	r := newRig(t, Options{LockoutFailures: 3, LockoutWindow: time.Minute, Now: clk.Now}, nil)
	try := func(user, pw string) int {
		t.Helper()
		c, code := connect(t, r.addr, user, pw, connOpts{from: "127.0.0.1"})
		c.c.Close()
		return code
	}
	for range 3 {
		if try("fridge1", "guess") == 0 {
			t.Fatal("a wrong password was accepted")
		}
	}
	if try("fridge1", r.pw["fridge1"]) == 0 {
		t.Fatal("the right password got in while the pair was locked")
	}
	clk.Advance(59 * time.Second)
	if try("fridge1", r.pw["fridge1"]) == 0 {
		t.Fatal("the lock ended before lockout_window")
	}
	if n := r.count("hearth_broker_connects_total", "locked_out"); n != 2 {
		t.Errorf("locked_out = %v, want 2", n)
	}
	clk.Advance(2 * time.Second)
	if code := try("fridge1", r.pw["fridge1"]); code != 0 {
		t.Fatalf("after lockout_window: CONNACK %#x, want accepted", code)
	}
	// Two failures, a window later two more: never three within one window.
	for range 2 {
		try("plug1", "guess")
	}
	clk.Advance(61 * time.Second)
	for range 2 {
		try("plug1", "guess")
	}
	if code := try("plug1", r.pw["plug1"]); code != 0 {
		t.Fatalf("failures in two windows added up to a lock: CONNACK %#x", code)
	}
}

// issue 14.4: wrong passwords with a device's name and client id from rotating
// addresses lock out only those addresses' attempts, never the device presenting
// its right password from its own address.
func TestLockoutByStrangerSparesTheDevice(t *testing.T) {
	r := newRig(t, Options{LockoutFailures: 5, LockoutWindow: time.Hour}, nil)
	ok, tries, attempts := 0, 0, 0
	for round := range 10 {
		for range 5 { // five wrong passwords, each from the next address of 127.0.0.2..9
			from := fmt.Sprintf("127.0.0.%d", 2+attempts%8)
			attempts++
			c, code := connect(t, r.addr, "fridge1", fmt.Sprintf("guess-%d", round), connOpts{from: from, clientID: "fridge1"})
			c.c.Close()
			if code == 0 {
				t.Fatalf("a wrong password from %s got in", from)
			}
		}
		c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{from: "127.0.0.1", clientID: "fridge1"})
		c.c.Close()
		tries++
		if code == 0 {
			ok++
		}
	}
	if ok != tries {
		t.Fatalf("the device got in %d times of %d while a stranger tried its name and client id from other addresses", ok, tries)
	}
	// Each stranger's address locked its own pair after 5 failures: 50 attempts from
	// 8 addresses, 40 of them checked, 10 refused unchecked.
	if n := r.count("hearth_broker_connects_total", "locked_out"); n != 10 {
		t.Errorf("locked_out = %v, want 10", n)
	}
	// The strangers' addresses are only slowed for other names: a device there gets in.
	c, code := connect(t, r.addr, "plug1", r.pw["plug1"], connOpts{from: "127.0.0.2"})
	c.c.Close()
	if code != 0 {
		t.Fatalf("plug1 from an address that failed as fridge1: CONNACK %#x, want accepted", code)
	}
}

// A source that keeps failing gets one password check at a time: it cannot take the
// checks a device from elsewhere needs (each costs tens of milliseconds of CPU).
func TestFailingSourceChecksOneAtATime(t *testing.T) {
	auth := newHeldAuth()
	r := newRig(t, Options{Auth: auth, LockoutFailures: 2, LockoutWindow: time.Hour, MaxConnecting: 16, MaxConnectingPerSource: 8}, nil)
	auth.pass.Store(true) // first, two failures from 127.0.0.2 make it suspect
	for i := range 2 {
		c, _ := connect(t, r.addr, fmt.Sprintf("nobody%d", i), "x", connOpts{from: "127.0.0.2"})
		c.c.Close()
	}
	auth.pass.Store(false)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := connect(t, r.addr, "guesser", fmt.Sprint(i), connOpts{from: "127.0.0.2"})
			c.c.Close()
		}()
	}
	waitFor(t, "a check of the suspect source to start", 5*time.Second, func() bool { n, _ := auth.counts("guesser"); return n >= 1 })
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{from: "127.0.0.1"})
		c.c.Close()
		if code != 0 {
			t.Errorf("fridge1 from a clean source: CONNACK %#x", code)
		}
	}()
	waitFor(t, "the clean source's check to start beside the suspect one", 5*time.Second, func() bool { n, _ := auth.counts("fridge1"); return n == 1 })
	if _, most := auth.counts("guesser"); most != 1 {
		t.Fatalf("%d checks of the suspect source at once, want 1", most)
	}
	close(auth.release)
	wg.Wait()
	if _, most := auth.counts("guesser"); most != 1 {
		t.Errorf("%d checks of the suspect source at once, want 1", most)
	}
}

// deviceGetsThrough connects fridge1 from the address from, publishes a reading and
// waits for its PUBACK.
func (r *rig) deviceGetsThrough(t *testing.T, from, while string) {
	t.Helper()
	c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{from: from})
	if code != 0 {
		t.Fatalf("a device from %s %s: CONNACK %d (-1: closed)", from, while, code)
	}
	c.publish(1, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`)
	c.ack(0x40, 1, 0)
}

// issue 14.3: one host holding every connecting slot it can (CONNECT header, then
// nothing) keeps no device from another address out.
func TestSlowlorisFromOneSource(t *testing.T) {
	r := newRig(t, Options{MaxConnecting: 8, MaxConnectingPerSource: 4, ConnectTimeout: time.Minute}, nil)
	var held []net.Conn
	for range 8 { // max_connecting of them: before, they took every slot
		held = append(held, halfOpen(t, r.addr, "127.0.0.2"))
	}
	// The listener accepts in order: these 8 were handled before the device's.
	r.deviceGetsThrough(t, "127.0.0.1", "while one host held its half-open connections")
	if n := r.count("hearth_broker_connects_total", "too_many_connecting_from_source"); n != 4 {
		t.Errorf("too_many_connecting_from_source = %v, want 4", n)
	}
	closed := 0
	for _, h := range held[4:] {
		if closedByBroker(h) {
			closed++
		}
	}
	if closed != 4 {
		t.Errorf("%d of the connections beyond max_connecting_per_source closed, want 4", closed)
	}
}

// When every connecting slot is held by a few sources, a connection from a source
// holding fewer takes the place of the oldest of the busiest.
func TestConnectingSlotsSharedAcrossSources(t *testing.T) {
	r := newRig(t, Options{MaxConnecting: 4, MaxConnectingPerSource: 2, ConnectTimeout: time.Minute}, nil)
	first := halfOpen(t, r.addr, "127.0.0.2")
	halfOpen(t, r.addr, "127.0.0.2")
	halfOpen(t, r.addr, "127.0.0.3")
	halfOpen(t, r.addr, "127.0.0.3")
	r.deviceGetsThrough(t, "127.0.0.1", "while two hosts held every slot")
	if n := r.count("hearth_broker_connects_total", "connecting_evicted"); n != 1 {
		t.Errorf("connecting_evicted = %v, want 1", n)
	}
	// The device is through: three held, one free. Two more hosts: the first takes
	// the free slot, the second the place of the one host still holding two; then
	// every host holds one, and a fifth takes nobody's place.
	halfOpen(t, r.addr, "127.0.0.4")
	halfOpen(t, r.addr, "127.0.0.5")
	if c := halfOpen(t, r.addr, "127.0.0.6"); !closedByBroker(c) {
		t.Error("a connection from a source no poorer than the others was let in while all slots were held")
	}
	if n := r.count("hearth_broker_connects_total", "connecting_evicted"); n != 2 {
		t.Errorf("connecting_evicted = %v, want 2", n)
	}
	if n := r.count("hearth_broker_connects_total", "too_many_connecting"); n != 1 {
		t.Errorf("too_many_connecting = %v, want 1", n)
	}
	if !closedByBroker(first) {
		t.Error("the oldest connection of the busiest source was not the one closed")
	}
}

// A connection that never completes its CONNECT is closed after connect_timeout,
// however it trickles bytes, and its slot is free again.
func TestConnectTimeoutIsAbsolute(t *testing.T) {
	r := newRig(t, Options{MaxConnecting: 1, ConnectTimeout: 300 * time.Millisecond}, nil)
	c := halfOpen(t, r.addr, "127.0.0.2")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte of the announced CONNECT every 50 ms, never all of it
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	}()
	if !closedByBroker(c) {
		t.Fatal("a trickling connection was not closed")
	}
	waitFor(t, "the slot to be free again", 5*time.Second, func() bool {
		c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{})
		c.c.Close()
		return code == 0
	})
}

// Close returns at once though clients are connecting: one whose CONNECT never
// completes, one in its password check (refused once it passes). mochi's Close
// disconnects only connected clients and waits for the rest: before, it waited for
// the connect timeout and the keep-alive (an agent stopped as its simulated
// household connected took longer than its shutdown_timeout).
func TestCloseWhileClientsConnect(t *testing.T) {
	auth := newHeldAuth()
	r := newRig(t, Options{Auth: auth, ConnectTimeout: time.Minute}, nil)
	halfOpen(t, r.addr, "127.0.0.2")
	checked := make(chan int, 1)
	go func() {
		c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{})
		c.c.Close()
		checked <- code
	}()
	waitFor(t, "a password check in progress", 5*time.Second, func() bool { n, _ := auth.counts(""); return n == 1 })
	closed := make(chan error, 1)
	go func() { closed <- r.b.Close() }()
	waitFor(t, "Close to begin", 5*time.Second, r.b.closing.Load)
	close(auth.release)
	waitFor(t, "Close to return while clients were connecting", 5*time.Second, func() bool {
		select {
		case err := <-closed:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			return true
		default:
			return false
		}
	})
	if code := <-checked; code == 0 {
		t.Error("a client was accepted while the broker was closing")
	}
}

// Connections waiting for their password check hold their connecting slot: mochi
// has read their CONNECT, and each holds it and a goroutine. Before, the slot was
// given up before the check, and a flood of wrong passwords queued without bound.
func TestPasswordCheckWaitersBounded(t *testing.T) {
	auth := newHeldAuth()
	r := newRig(t, Options{Auth: auth, MaxConnecting: 4, MaxConnectingPerSource: 4}, nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() {
		select {
		case <-auth.release:
		default:
			close(auth.release)
		}
	}()
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := connect(t, r.addr, "nobody", "x", connOpts{from: fmt.Sprintf("127.0.0.%d", 2+i)})
			c.c.Close()
		}()
	}
	waitFor(t, "four password checks in progress", 5*time.Second, func() bool { n, _ := auth.counts(""); return n == 4 })
	fifth := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{from: "127.0.0.9"})
		c.c.Close()
		fifth <- code
	}()
	var code int
	waitFor(t, "the fifth connection to be refused or checked", 10*time.Second, func() bool {
		if n, _ := auth.counts(""); n > 4 {
			code = -2
			return true
		}
		select {
		case code = <-fifth:
			return true
		default:
			return false
		}
	})
	if _, most := auth.counts(""); most > 4 || code != -1 {
		t.Fatalf("password checks at once: %d with max_connecting 4; fifth connection: %d, want closed (-1)", most, code)
	}
	if n := r.count("hearth_broker_connects_total", "too_many_connecting"); n != 1 {
		t.Errorf("too_many_connecting = %v, want 1", n)
	}
}

// issue 14.8: many concurrent connects never make more than max_clients connected;
// the refusals are CONNACK server unavailable / busy, counted; a connected device
// reconnecting (its old connection still open) still gets in.
func TestMaxClientsExact(t *testing.T) {
	const maxClients, n = 10, 40
	r := newRig(t, Options{MaxClients: maxClients, MaxConnecting: 64, MaxConnectingPerSource: 64}, nil)
	codes := make([]int, n)
	conns := make([]*raw, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], codes[i] = connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{v5: i%2 == 1, clientID: fmt.Sprintf("c%d", i)})
		}()
	}
	wg.Wait()
	accepted, connected := 0, -1
	for i, code := range codes {
		switch {
		case code == 0:
			accepted++
			connected = i
		case i%2 == 0 && code != 0x03, i%2 == 1 && code != 0x89:
			t.Errorf("connect %d (%s): CONNACK %#x, want 0x03 (3.1.1) or 0x89 (5)", i, versionName(i%2 == 1), code)
		}
	}
	if accepted != maxClients {
		t.Fatalf("%d of %d concurrent connects accepted with max_clients %d", accepted, n, maxClients)
	}
	if got := r.count("hearth_broker_connects_total", "too_many_clients"); got != n-maxClients {
		t.Errorf("too_many_clients = %v, want %d", got, n-maxClients)
	}
	waitFor(t, "the broker to count its clients", 5*time.Second, func() bool { return r.b.Clients() == maxClients })
	// The same session again, its old connection still open: it takes the old one's place.
	c, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{v5: connected%2 == 1, clientID: fmt.Sprintf("c%d", connected)})
	if code != 0 {
		t.Fatalf("a session reconnecting while the broker was full: CONNACK %#x", code)
	}
	c.publish(1, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`)
	c.ack(0x40, 1, 0)
	if _, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{clientID: "another"}); code != 0x03 {
		t.Errorf("a new session after the takeover: CONNACK %#x, want 0x03 (still full)", code)
	}
}

// issue 14.5: a topic deeper or longer than allowed is refused: MQTT 5 PUBACK 0x90
// and the connection kept; MQTT 3.1.1 the connection closed without a PUBACK.
func TestTopicLimitsEnforced(t *testing.T) {
	deep := "hearth/v1/fridge1/" + strings.Repeat("a/", 19) + "b" // 23 levels
	long := "hearth/v1/fridge1/" + strings.Repeat("x", 2013-len("hearth/v1/fridge1/"))
	edge := strings.Repeat("a/", 15) + "b" // 16 levels: allowed (and nobody's topic)
	for _, v5 := range []bool{false, true} {
		t.Run(versionName(v5), func(t *testing.T) {
			r := newRig(t, Options{MaxTopicLevels: 16, MaxTopicBytes: 1024}, nil)
			for i, topic := range []string{deep, long} {
				c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
				c.publish(uint16(i+1), topic, `{"signal":"door","value":1}`)
				if v5 {
					c.ack(0x40, uint16(i+1), 0x90)
					if got := c.ping(); len(got) != 0 {
						t.Fatalf("after the refusal: %x", got)
					}
				} else {
					c.expectClosed(fmt.Sprintf("%d-byte topic", len(topic)))
				}
			}
			if n := r.count("hearth_broker_publishes_total", "topic_invalid"); n != 2 {
				t.Errorf("topic_invalid = %v, want 2", n)
			}
			if n := r.count("hearth_broker_publishes_total", "unknown_topic"); n != 0 {
				t.Errorf("the refused topics went on to the decoder (unknown_topic = %v)", n)
			}
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			c.publish(3, edge, `1`)
			c.ack(0x40, 3, 0x90) // not a topic anybody reads: refused by the decoder, not the limit
			if n := r.count("hearth_broker_publishes_total", "topic_invalid"); n != 2 {
				t.Errorf("a topic at the limits counted topic_invalid")
			}
			if len(r.readings()) != 0 {
				t.Error("a refused topic's reading was stored")
			}
		})
	}
}

// MQTT 5 topic aliases are bounded (mochi's default: 65535 of them per client).
func TestTopicAliasesBounded(t *testing.T) {
	r := newRig(t, Options{MaxTopicAliases: 4}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	c.publishQoS(1, 0, 1, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`, []byte{0x23, 0, 4})
	c.ack(0x40, 1, 0)
	c.publishQoS(1, 0, 2, "hearth/v1/fridge1/readings", `{"signal":"door","value":0}`, []byte{0x23, 0, 5})
	typ, p := c.read()
	if typ != 0xE0 || len(p) < 1 || p[0] != 0x94 {
		t.Fatalf("alias above max_topic_aliases: packet %#x %x, want DISCONNECT 0x94", typ, p)
	}
}

// issue 14.7: a publish to a $SYS topic (which mochi drops without a word) is
// answered and counted.
func TestSysTopicPublishAnswered(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(versionName(v5), func(t *testing.T) {
			r := newRig(t, Options{}, nil)
			for i, topic := range []string{"$SYS/x", "$sys/broker/uptime", "$SYS/" + strings.Repeat("x", 2000)} {
				c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
				c.publish(uint16(i+1), topic, `1`)
				if v5 {
					c.ack(0x40, uint16(i+1), 0x87)
					if got := c.ping(); len(got) != 0 {
						t.Fatalf("after the refusal: %x", got)
					}
				} else {
					c.expectClosed(topic)
				}
			}
			if n := r.count("hearth_broker_publishes_total", "denied"); n != 3 {
				t.Errorf("denied = %v, want 3", n)
			}
		})
	}
}

// issue 14.6, MQTT 3.1.1: QoS 2 gets its full flow — PUBREC only after the commit,
// PUBCOMP for the PUBREL, a PUBLISH sent again before the PUBREL answered and not
// stored twice, no PUBREC for a reading the store refused.
func TestQoS2MQTT311(t *testing.T) {
	var g *gate
	r := newRig(t, Options{}, func(st *store.Store) device.Sink { g = &gate{next: st}; return g })
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], false)
	topic, payload := "hearth/v1/fridge1/readings", `{"signal":"door","value":1}` // no seq: the store cannot de-duplicate it
	c.publishQoS(2, 0, 7, topic, payload, nil)
	waitFor(t, "the sink to hold the publish", 5*time.Second, func() bool { return g.pending() == 1 })
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("broker sent %x before the reading was committed", got)
	}
	g.release(nil)
	c.ack(0x50, 7, 0)                             // PUBREC
	c.publishQoS(2, 0x08, 7, topic, payload, nil) // DUP: the PUBREC was lost, say
	c.ack(0x50, 7, 0)
	if got := c.ping(); len(got) != 0 || g.pending() != 0 {
		t.Fatalf("after the duplicate: %x, %d held by the sink", got, g.pending())
	}
	c.write([]byte{0x62, 2, 0, 7}) // PUBREL
	c.ack(0x70, 7, 0)              // PUBCOMP
	if n := len(r.readings()); n != 1 {
		t.Fatalf("%d readings stored, want 1 (the duplicate stored again?)", n)
	}
	// Packet id 7 is free again: a new message with it is a new reading.
	c.publishQoS(2, 0, 7, topic, `{"signal":"door","value":0}`, nil)
	waitFor(t, "the sink to hold the new publish", 5*time.Second, func() bool { return g.pending() == 1 })
	g.release(nil)
	c.ack(0x50, 7, 0)
	c.write([]byte{0x62, 2, 0, 7})
	c.ack(0x70, 7, 0)
	// Refused by the store: no PUBREC, the device sends it again later.
	c.publishQoS(2, 0, 8, topic, payload, nil)
	waitFor(t, "the sink to hold the refused publish", 5*time.Second, func() bool { return g.pending() == 1 })
	g.release(fmt.Errorf("store: %w", store.ErrQuota))
	if got := c.ping(); len(got) != 0 {
		t.Fatalf("a refused QoS 2 reading got %x, want no PUBREC", got)
	}
	if n := len(r.readings()); n != 2 {
		t.Fatalf("%d readings stored, want 2", n)
	}
}

// issue 14.6, MQTT 5: the CONNACK says Maximum QoS 1; a QoS 2 publish anyway is a
// protocol error: DISCONNECT 0x9B, counted, nothing stored.
func TestQoS2MQTT5Refused(t *testing.T) {
	r := newRig(t, Options{}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	c.publishQoS(2, 0, 1, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`, nil)
	typ, p := c.read()
	if typ != 0xE0 || len(p) < 1 || p[0] != 0x9B {
		t.Fatalf("QoS 2 from an MQTT 5 client: packet %#x %x, want DISCONNECT 0x9B", typ, p)
	}
	if n := r.count("hearth_broker_publishes_total", "qos_unsupported"); n != 1 {
		t.Errorf("qos_unsupported = %v, want 1", n)
	}
	if len(r.readings()) != 0 {
		t.Error("the QoS 2 reading was stored")
	}
}

// Real clients at QoS 2: mosquitto_pub (MQTT 3.1.1: delivered; MQTT 5: it reads
// Maximum QoS 1 from the CONNACK and fails before sending) and paho (MQTT 3.1.1).
func TestQoS2RealClients(t *testing.T) {
	r := newRig(t, Options{}, nil)
	if out, err := r.pubAs("fridge1", "-V", "mqttv311", "-q", "2", "-t", "hearth/v1/fridge1/readings", "-m", `{"signal":"door","value":1}`); err != nil {
		t.Fatalf("mosquitto_pub -q 2 (3.1.1): %v: %s", err, out)
	}
	if n := len(r.readings()); n != 1 {
		t.Fatalf("%d readings after mosquitto_pub -q 2 returned, want 1", n)
	}
	out, _ := r.pubAs("fridge1", "-V", "mqttv5", "-q", "2", "-t", "hearth/v1/fridge1/readings", "-m", `{"signal":"door","value":0}`)
	if !strings.Contains(out, "QoS not supported") {
		t.Fatalf("mosquitto_pub -q 2 (5) against Maximum QoS 1 said %q, want QoS not supported", out)
	}
	if n := r.count("hearth_broker_publishes_total", "qos_unsupported"); n != 0 {
		t.Errorf("mosquitto_pub sent QoS 2 despite the CONNACK (%v counted); it said: %s", n, out)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + r.addr).SetClientID("paho-fridge").SetUsername("fridge1").SetPassword(r.pw["fridge1"])
	pc := paho.NewClient(opts)
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect: %v", tok.Error())
	}
	defer pc.Disconnect(100)
	for i := range 5 {
		tok := pc.Publish("hearth/v1/fridge1/readings", 2, false, fmt.Sprintf(`{"signal":"temperature","value":%d,"boot":2,"seq":%d}`, i, i+1))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("paho QoS 2 publish %d: %v", i, tok.Error())
		}
	}
	if n := len(r.readings()); n != 6 {
		t.Fatalf("%d readings after paho's QoS 2 publishes completed, want 6", n)
	}
}

// issue 19.5: a device may subscribe to its own topics and nobody else's (the
// mutation "subscribe anywhere under hearth/v1/" passed every test), nor publish
// into another device's.
func TestACLConfinesDeviceToItsTopics(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(versionName(v5), func(t *testing.T) {
			r := newRig(t, Options{}, nil)
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			if code := c.subscribeCode(1, "hearth/v1/fridge1/#"); code >= 0x80 {
				t.Fatalf("own topics refused: %#x", code)
			}
			refused := byte(0x80)
			if v5 {
				refused = 0x87
			}
			others := []string{"hearth/v1/plug1/#", "hearth/v1/plug1/readings", "hearth/v1/+/readings", "hearth/v1/#", "#",
				"+/v1/plug1/#", "hearth/v1/fridge1x/#", "hearth/v1/plug1/fridge1/#"}
			for i, f := range others {
				if code := c.subscribeCode(uint16(i+2), f); code != refused {
					t.Errorf("fridge1 subscribing to %s: SUBACK %#x, want %#x", f, code, refused)
				}
			}
			if n := r.count("hearth_broker_subscribes_total", "denied"); n != float64(len(others)) {
				t.Errorf("subscribes denied = %v, want %d", n, len(others))
			}
			// The publish twin: into another device's topics.
			c.publish(9, "hearth/v1/plug1/readings", `{"signal":"power","value":1}`)
			if v5 {
				c.ack(0x40, 9, 0x87)
			} else {
				c.expectClosed("publish into plug1's topics")
			}
			if n := r.count("hearth_broker_publishes_total", "denied"); n != 1 {
				t.Errorf("publishes denied = %v, want 1", n)
			}
			if rs := r.readings(); len(rs) != 0 {
				t.Errorf("stored %+v", rs)
			}
		})
	}
}

// A client holds at most max_subscriptions subscriptions; subscribing again to one it
// holds is no new one.
func TestMaxSubscriptions(t *testing.T) {
	r := newRig(t, Options{MaxSubscriptions: 3}, nil)
	c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], true)
	for i, f := range []string{"hearth/v1/fridge1/a", "hearth/v1/fridge1/b", "hearth/v1/fridge1/c", "hearth/v1/fridge1/a"} {
		if code := c.subscribeCode(uint16(i+1), f); code >= 0x80 {
			t.Fatalf("subscription %d (%s) refused: %#x", i+1, f, code)
		}
	}
	if code := c.subscribeCode(5, "hearth/v1/fridge1/d"); code != 0x87 {
		t.Fatalf("a fourth subscription with max_subscriptions 3: SUBACK %#x, want 0x87", code)
	}
	if n := r.count("hearth_broker_subscribes_total", "too_many"); n != 1 {
		t.Errorf("too_many = %v, want 1", n)
	}
}

// Two devices with one client id (firmware examples ship a fixed one) do not throw
// each other out: a session belongs to the device that made it.
func TestClientIDSharedByTwoDevices(t *testing.T) {
	r := newRig(t, Options{}, nil)
	fridge, code := connect(t, r.addr, "fridge1", r.pw["fridge1"], connOpts{clientID: "ESP8266Client"})
	if code != 0 {
		t.Fatalf("fridge1: CONNACK %#x", code)
	}
	fridge.subscribe(1, "hearth/v1/fridge1/#")
	plug, code := connect(t, r.addr, "plug1", r.pw["plug1"], connOpts{clientID: "ESP8266Client"})
	if code != 0 {
		t.Fatalf("plug1: CONNACK %#x", code)
	}
	plug.publish(1, "hearth/v1/plug1/readings", `{"signal":"power","value":1}`)
	plug.ack(0x40, 1, 0)
	fridge.write([]byte{0xC0, 0})
	if typ, p, err := fridge.next(); err != nil || typ != 0xD0 {
		t.Fatalf("fridge1 after plug1 connected with its client id: %#x %x %v, want PINGRESP (still connected)", typ, p, err)
	}
	fridge.publish(2, "hearth/v1/fridge1/readings", `{"signal":"door","value":1}`)
	fridge.ack(0x40, 2, 0)
	if n := r.b.Clients(); n != 2 {
		t.Errorf("%d clients connected, want 2", n)
	}
}

// Unauthenticated clients sending crafted packets (mochi #502, CVE-2024-50948 — a
// crafted request from an unauthenticated client; its details are not published, so
// these are the shapes of that class): each connection is closed without the broker
// allocating what the packet announces, and the broker serves devices throughout.
func TestUnauthenticatedCraftedPackets(t *testing.T) {
	r := newRig(t, Options{ConnectTimeout: 500 * time.Millisecond}, nil)
	cases := []struct {
		name string
		b    []byte
	}{
		{"CONNECT announcing 256 MB", []byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}},
		{"CONNECT announcing 60 KiB, never sent", []byte{0x10, 0x80, 0xE0, 0x03, 0x00}},
		{"remaining length of five bytes", []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}},
		{"PUBLISH before CONNECT", []byte{0x30, 0x05, 0x00, 0x01, 'a', 'x', 'y'}},
		{"PUBACK before CONNECT", []byte{0x40, 0x02, 0x00, 0x01}},
		{"SUBSCRIBE before CONNECT", []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, '#', 0x01}},
		{"CONNECT with a protocol name longer than the packet", []byte{0x10, 0x04, 0xFF, 0xFF, 'M', 'Q'}},
		{"CONNECT of protocol level 255", append([]byte{0x10, 0x0C}, append(mqttString(nil, "MQTT"), 0xFF, 0x02, 0, 60, 0, 0)...)},
		{"CONNECT with reserved flag set", append([]byte{0x10, 0x0C}, append(mqttString(nil, "MQTT"), 0x04, 0x03, 0, 60, 0, 0)...)},
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, cs := range cases {
		c := dialFrom(t, r.addr, "127.0.0.2")
		if _, err := c.Write(cs.b); err != nil {
			t.Fatalf("%s: %v", cs.name, err)
		}
		var got []byte
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("%s: connection not closed: %v", cs.name, err)
		}
		if len(got) >= 4 && got[0] == 0x20 && got[3] == 0 {
			t.Errorf("%s: accepted: %x", cs.name, got)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("the broker allocated %d MB for unauthenticated packets", grew>>20)
	}
	if n := r.count("hearth_broker_connects_total", "accepted"); n != 0 {
		t.Errorf("%v crafted connections accepted", n)
	}
	if out, err := r.pubAs("plug1", "-q", "1", "-t", "hearth/v1/plug1/readings", "-m", `{"signal":"power","value":3}`); err != nil {
		t.Fatalf("broker stopped serving: %v %s", err, out)
	}
}
