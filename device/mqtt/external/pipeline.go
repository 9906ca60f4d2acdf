package external

import (
	"errors"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
)

// pipeline takes the messages of one connection in the order paho delivers them
// (SetOrderMatters(true): handle runs for one message at a time), hands their readings
// to the sink in that order and acknowledges them in that order once committed, with
// up to MaxInflight messages between handle and their PUBACK. The store commits in
// submission order, so the readings of one device are stored in publish order.
type pipeline struct {
	e    *Source
	sink device.Sink

	sem     chan struct{}  // a token per message held, taken by handle, given back by the acker
	acks    chan ackItem   // completed messages, in arrival order, to the acker; cap = cap(sem): never full
	refused chan error     // the first refusal that may pass: ends the connection
	stopc   chan struct{}  // closed by stop: handle takes no more messages
	quit    chan struct{}  // closed by stop: the acker ends
	idle    chan struct{}  // signalled by the acker when it freed the last token
	acker   sync.WaitGroup // the acker goroutine

	mu       sync.Mutex
	queue    []*slot // messages held and not yet passed to the acker, in arrival order
	refusing bool    // a refusal that may pass happened: nothing more goes to the sink
	halted   bool    // such a refusal reached the head: nothing from it on is acknowledged
}

// slot is one message held by the pipeline.
type slot struct {
	m    paho.Message
	done bool // its outcome is known
	ack  bool // acknowledge it
	halt bool // it was refused for now: neither it nor anything after it is acknowledged
}

type ackItem struct {
	m   paho.Message
	ack bool
}

func newPipeline(e *Source, sink device.Sink) *pipeline {
	p := &pipeline{e: e, sink: sink, sem: make(chan struct{}, e.o.MaxInflight), acks: make(chan ackItem, e.o.MaxInflight),
		refused: make(chan error, 1), stopc: make(chan struct{}), quit: make(chan struct{}), idle: make(chan struct{}, 1)}
	p.acker.Add(1)
	go p.ack()
	return p
}

// ack sends the PUBACKs in order (paho's Ack may wait for its writer: never from a
// commit callback) and frees each message's token once its PUBACK is queued.
func (p *pipeline) ack() {
	defer p.acker.Done()
	for {
		select {
		case a := <-p.acks:
			if a.ack {
				a.m.Ack() // a no-op at QoS 0
			}
			<-p.sem
			if len(p.sem) == 0 {
				select {
				case p.idle <- struct{}{}:
				default:
				}
			}
		case <-p.quit:
			return
		}
	}
}

// handle is paho's message handler: it decodes the message and hands its readings to
// the sink, or settles it at once. It waits while MaxInflight messages are held, and
// while the sink applies back-pressure: that is the flow control (paho reads nothing
// more meanwhile, the broker keeps the rest). A wait longer than the keepalive plus
// paho's ping timeout (30s + 10s: a stalled store) also holds up the PINGRESP, and
// paho drops the connection; the unacknowledged messages come again after the
// reconnect.
func (p *pipeline) handle(_ paho.Client, m paho.Message) {
	// Once stopping, no message is taken. Checked first: a select with a free token
	// and a closed stopc picks either, and a message taken after one was left would
	// be acknowledged before it; the one left then comes again after the restart,
	// out of order, and the broker resends the rest of its window too.
	select {
	case <-p.stopc:
		return // not acknowledged: sent again on the next connection
	default:
	}
	select {
	case p.sem <- struct{}{}:
	case <-p.stopc:
		return
	}
	e := p.e
	s := &slot{m: m}
	p.mu.Lock()
	p.queue = append(p.queue, s)
	refusing := p.refusing
	p.mu.Unlock()
	now := time.Now()
	topic, payload := m.Topic(), m.Payload()
	e.conn.message(now)
	if refusing {
		p.complete(s, false, false) // the connection is ending: sent again on the next one
		return
	}
	rs, derr := e.o.Handler.Handle(topic, payload, now)
	var fe *mqtt.FieldErrors
	if errors.As(derr, &fe) {
		e.fieldsRefused(topic, fe, now)
		if len(rs) > 0 {
			derr = nil // the rest of the message is stored
		}
	}
	if derr != nil || len(rs) == 0 {
		res := mqtt.Reason(derr)
		e.msgs.WithLabelValues(res).Inc()
		if derr != nil {
			e.problem(res, topic, derr, now)
		}
		p.complete(s, true, false) // it will never become valid: acknowledged
		return
	}
	if m.Qos() == 0 {
		e.topics.qos0(topic, now)
	}
	if m.Retained() {
		if rs = e.retain.fresh(rs, e.log); len(rs) == 0 {
			e.msgs.WithLabelValues("retained_repeat").Inc()
			p.complete(s, true, false)
			return
		}
	}
	undo := e.retain.submitted(rs)
	n := len(payload)
	p.sink.Submit(rs, func(err error) {
		switch {
		case err == nil:
			e.msgs.WithLabelValues("committed").Inc()
			e.conn.committed(n)
			p.complete(s, true, false)
		case e.o.Retryable(err):
			e.retain.undo(undo)
			e.msgs.WithLabelValues("refused").Inc()
			p.mu.Lock()
			p.refusing = true
			p.mu.Unlock()
			select {
			case p.refused <- err:
			default:
			}
			p.complete(s, false, true)
		default:
			// It will never be taken: acknowledged, so that it does not hold up the feed.
			e.retain.undo(undo)
			e.msgs.WithLabelValues("rejected").Inc()
			e.problem("rejected", topic, err, time.Now())
			p.complete(s, true, false)
		}
	})
}

// complete records a message's outcome and passes every settled message at the head
// of the queue to the acker, in order. It never blocks (commit callbacks call it).
func (p *pipeline) complete(s *slot, ack, halt bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.done, s.ack, s.halt = true, ack, halt
	for len(p.queue) > 0 && p.queue[0].done {
		h := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if h.halt {
			p.halted = true
		}
		p.acks <- ackItem{m: h.m, ack: h.ack && !p.halted}
	}
}

// stop takes no more messages and waits up to d for those held to be settled and
// acknowledged; then the acker ends. Commits that complete later are not
// acknowledged: the broker sends those messages again.
func (p *pipeline) stop(d time.Duration) {
	close(p.stopc)
	timeout := time.NewTimer(d)
	defer timeout.Stop()
wait:
	for len(p.sem) > 0 {
		select {
		case <-p.idle:
		case <-timeout.C:
			break wait
		}
	}
	close(p.quit)
	p.acker.Wait()
}
