package broker

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// admission bounds the connections that have not finished connecting: accepted but
// not yet through the password check (mochi #502: mochi allocates what a CONNECT
// announces before reading it, and each connection waiting for its password check
// holds its CONNECT, its buffers and a goroutine). At most max in all, and at most
// perSource from one source (an IPv4 address, or an IPv6 /64: a host on a LAN takes
// as many IPv6 addresses in its /64 as it likes).
//
// When max are held, a new connection from a source holding fewer than the busiest
// source (by two or more) takes the place of the busiest source's oldest one, so
// that a few sources holding every slot between them (a slowloris from several
// addresses) cannot keep a device from another address out; otherwise the new
// connection is closed at once. Every refusal and eviction is counted.
type admission struct {
	mu        sync.Mutex
	max       int
	perSource int
	total     int
	bySource  map[string][]*gatedConn // each source's connections still connecting, oldest first
}

func newAdmission(max, perSource int) *admission {
	return &admission{max: max, perSource: perSource, bySource: map[string][]*gatedConn{}}
}

// admit takes a slot for g from its source. It returns "" when admitted, else the
// result to count the refusal under; evicted, when not nil, is a connection that
// gave up its slot to g and that the caller closes.
func (a *admission) admit(g *gatedConn) (refused string, evicted *gatedConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	mine := len(a.bySource[g.source])
	if mine >= a.perSource {
		return "too_many_connecting_from_source", nil
	}
	if a.total >= a.max {
		busiest, most := "", 0
		for src, cs := range a.bySource {
			if len(cs) > most {
				busiest, most = src, len(cs)
			}
		}
		if most < mine+2 {
			return "too_many_connecting", nil
		}
		evicted = a.bySource[busiest][0]
		a.remove(evicted)
	}
	a.bySource[g.source] = append(a.bySource[g.source], g)
	a.total++
	g.admitted = true
	return "", evicted
}

// release gives up g's slot, once; it reports whether g still held one.
func (a *admission) release(g *gatedConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !g.admitted {
		return false
	}
	a.remove(g)
	return true
}

// remove takes g out of its source's list (under mu).
func (a *admission) remove(g *gatedConn) {
	cs := a.bySource[g.source]
	for i, c := range cs {
		if c == g {
			cs = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(a.bySource, g.source)
	} else {
		a.bySource[g.source] = cs
	}
	a.total--
	g.admitted = false
}

// closeAll closes every connection still connecting (the broker is closing: mochi's
// Close disconnects only the clients already connected, and waits for the rest).
func (a *admission) closeAll() {
	a.mu.Lock()
	var all []*gatedConn
	for _, cs := range a.bySource {
		all = append(all, cs...)
	}
	for _, g := range all {
		a.remove(g)
	}
	a.mu.Unlock()
	for _, g := range all {
		g.Close()
	}
}

// connecting is the number of connections holding a slot.
func (a *admission) connecting() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// sourceOf is the source a connection is counted under: its IPv4 address, or the
// /64 of its IPv6 address. Connections through the hub's own loopback (a bridge on
// the hub, the simulated household) share the source 127.0.0.1; the per-source limit
// only binds while they are connecting, which takes one round trip and a password check.
func sourceOf(remote net.Addr) string {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return remote.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// gatedConn is a client's connection as the broker accepted it: it holds a
// connecting slot (admission) until its client is through the password check or
// the connection closes, and a client slot (clients) from a successful password
// check until the connection closes.
type gatedConn struct {
	net.Conn
	b        *Broker
	source   string
	admitted bool          // holds a connecting slot (under b.admit.mu)
	client   atomic.Bool   // holds a client slot
	gone     chan struct{} // closed by Close
	closed   sync.Once
}

// connected gives up the connecting slot: the client is through its password check.
func (g *gatedConn) connected() { g.b.admit.release(g) }

// Close closes the connection and gives up its slots. gone is closed before the
// client slot is looked at, so that a slot taken while Close runs is seen by one of
// the two (takeClientSlot looks at gone after taking it).
func (g *gatedConn) Close() error {
	var err error
	g.closed.Do(func() {
		close(g.gone)
		err = g.Conn.Close()
	})
	g.b.admit.release(g)
	g.dropClientSlot()
	return err
}

// dropClientSlot gives up g's client slot, if it holds one.
func (g *gatedConn) dropClientSlot() {
	if g.client.Swap(false) {
		g.b.clients.Add(-1)
	}
}

// takeClientSlot reserves one of max_clients for g, or takes over the slot of old (a
// connection of the same session that the new one replaces: mochi disconnects it
// right after the password check), so that the number of connected clients never
// exceeds max_clients, not even for the moment two connections of one session overlap,
// and a device whose old connection is still half-open (rebooted without closing it)
// gets in while the broker is full. It reports false when every slot is taken.
func (b *Broker) takeClientSlot(g *gatedConn, old *gatedConn) bool {
	if old == nil || !old.client.Swap(false) {
		for {
			n := b.clients.Load()
			if n >= int64(b.opts.MaxClients) {
				return false
			}
			if b.clients.CompareAndSwap(n, n+1) {
				break
			}
		}
	}
	g.client.Store(true)
	select {
	case <-g.gone: // closed meanwhile (evicted): its Close may not have seen the slot
		g.dropClientSlot()
	default:
	}
	return true
}
