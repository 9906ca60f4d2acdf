package cdptest

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Fault is what the proxy does to the next request that starts on any connection
// (the first bytes from the client after a response, or on a new connection).
type Fault int

const (
	// Reset closes the client's connection with a TCP RST before anything reaches
	// the receiver.
	Reset Fault = iota + 1
	// ResetAfterForward passes the request to the receiver and resets the client's
	// connection when the answer comes: the receiver has the batch, the sender does not
	// know it (the fault that makes duplicates).
	ResetAfterForward
	// Blackhole swallows the request and never answers: the sender times out.
	Blackhole
)

// Proxy is a TCP proxy on 127.0.0.1 between hearth and a receiver that injects
// network faults: resets, latency, black holes. (A small proxy of our own rather than
// toxiproxy: toxiproxy's toxics act on byte streams, not on request boundaries, and
// the tests need "this request reaches the receiver, its answer is lost".)
type Proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	faults  []Fault
	latency time.Duration
	conns   map[net.Conn]bool
	done    bool
	wg      sync.WaitGroup
	applied map[Fault]int
}

// NewProxy listens on 127.0.0.1 (port 0) and forwards to upstream (host:port).
func NewProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}, applied: map[Fault]int{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Inject queues faults for the next requests, one each.
func (p *Proxy) Inject(fs ...Fault) { p.mu.Lock(); p.faults = append(p.faults, fs...); p.mu.Unlock() }

// SetLatency delays every chunk of every answer by d.
func (p *Proxy) SetLatency(d time.Duration) { p.mu.Lock(); p.latency = d; p.mu.Unlock() }

// Applied returns how many times each fault was applied.
func (p *Proxy) Applied() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range p.applied {
		out[k] = v
	}
	return out
}

// Pending is the number of faults queued and not yet applied.
func (p *Proxy) Pending() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.faults) }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.done {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// serve pumps one client connection. Requests and answers alternate on an HTTP/1.1
// connection, so a request starts at the first client bytes after an answer.
func (p *Proxy) serve(client net.Conn) {
	defer p.track(client, false)
	defer client.Close()
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		reset(client)
		return
	}
	if !p.track(up, true) {
		up.Close()
		return
	}
	defer p.track(up, false)
	defer up.Close()
	var mu sync.Mutex
	answered := true // the next client bytes start a request
	var armed Fault  // the fault of the request in flight
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				mu.Lock()
				f := armed
				answered, armed = true, 0
				mu.Unlock()
				if f == ResetAfterForward {
					reset(client)
					return
				}
				p.mu.Lock()
				lat := p.latency
				p.mu.Unlock()
				if lat > 0 {
					time.Sleep(lat)
				}
				if _, err := client.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			mu.Lock()
			start := answered
			answered = false
			var f Fault
			if start {
				p.mu.Lock()
				if len(p.faults) > 0 {
					f = p.faults[0]
					p.faults = p.faults[1:]
					p.applied[f]++
				}
				p.mu.Unlock()
				armed = f
			} else {
				f = armed
			}
			mu.Unlock()
			switch f {
			case Reset:
				reset(client)
				return
			case Blackhole:
				continue // swallowed; the answer never comes
			}
			if _, err := up.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}
