package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt/native"
)

// PublishOptions configure Publish.
type PublishOptions struct {
	Broker      string            // e.g. tcp://127.0.0.1:1883
	Credentials map[string]string // device id → password (each appliance connects as itself)
	// Speed is simulated seconds per real second (10080: a week per minute).
	// Zero or +Inf: as fast as the broker acknowledges.
	Speed float64
	// Until stops the run once simulated time reaches it (zero: run until ctx ends).
	// When the simulation catches up with the wall clock it goes on in real time.
	Until    time.Time
	Tick     time.Duration // real time between steps (default 100ms)
	BatchMax int           // readings per publish (default 100)
	Inflight int           // unacknowledged publishes per appliance (default 16)
	Now      func() time.Time
	Logger   *slog.Logger
	// OnPublished, if set, is called after each acknowledged publish with its readings
	// and payload size (for tests and the demo's raw-bytes count). It is called from
	// one goroutine per appliance: concurrently, across appliances.
	OnPublished func(rs []device.Reading, payloadBytes int)
	// Skip names appliances not published at all: their readings are drawn (the
	// others' stay the same) and dropped (a device the household had hearth forget).
	Skip map[string]bool
}

// Publish runs h on an accelerated clock and publishes its readings to an MQTT broker
// in hearth's native schema, QoS 1, one connection per appliance with that
// appliance's own credentials — as real appliances would. It returns nil when ctx is
// cancelled or Until is reached with every publish acknowledged.
func Publish(ctx context.Context, h *Household, o PublishOptions) error {
	if o.Tick <= 0 {
		o.Tick = 100 * time.Millisecond
	}
	if o.BatchMax <= 0 {
		o.BatchMax = 100
	}
	if o.Inflight <= 0 {
		o.Inflight = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger.With("component", "sim")
	pubs := map[string]*appPub{}
	defer func() {
		for _, p := range pubs {
			p.c.Disconnect(250)
		}
	}()
	for _, a := range h.Appliances() {
		if o.Skip[a.ID] {
			continue
		}
		pw, ok := o.Credentials[a.ID]
		if !ok {
			return fmt.Errorf("sim: no credentials for %s", a.ID)
		}
		opts := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(a.ID).SetUsername(a.ID).SetPassword(pw).
			SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
			SetOrderMatters(false).SetMaxReconnectInterval(2 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		select {
		case <-tok.Done():
			if err := tok.Error(); err != nil {
				return fmt.Errorf("sim: %s: connect: %w", a.ID, err)
			}
		case <-ctx.Done():
			return nil
		}
		pubs[a.ID] = &appPub{c: c, topic: native.Topic(a.ID)}
	}
	log.Info("simulated household publishing", "persona", h.Persona(), "appliances", len(pubs), "from", h.Now().Format(time.DateOnly), "speed", o.Speed)

	realStart, simStart := o.Now(), h.Now()
	var buf []device.Reading
	var wg sync.WaitGroup
	errc := make(chan error, len(pubs))
	for _, p := range pubs {
		p.queue = make(chan chunk, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(ctx, o.Inflight, o.OnPublished); err != nil {
				errc <- err
			}
		}()
	}
	finish := func() {
		for _, p := range pubs {
			close(p.queue)
		}
		wg.Wait()
	}
	t := time.NewTicker(o.Tick)
	defer t.Stop()
	for {
		now := o.Now()
		var target time.Time
		if o.Speed > 0 && !math.IsInf(o.Speed, 1) {
			target = simStart.Add(time.Duration(float64(now.Sub(realStart)) * o.Speed))
		} else {
			target = h.Now().Add(24 * time.Hour)
		}
		if target.After(now) {
			target = now // caught up with the present: real time from here on
		}
		if !o.Until.IsZero() && target.After(o.Until) {
			target = o.Until
		}
		if target.After(h.Now()) {
			buf = h.Advance(buf[:0], target)
			byDev := map[string][]device.Reading{}
			for _, r := range buf {
				byDev[r.Device] = append(byDev[r.Device], r)
			}
			for id, rs := range byDev {
				p := pubs[id]
				if p == nil {
					continue // skipped
				}
				for len(rs) > 0 {
					n := min(len(rs), o.BatchMax)
					c := chunk{rs: append([]device.Reading(nil), rs[:n]...)}
					c.payload = native.Append(nil, c.rs)
					rs = rs[n:]
					select {
					case p.queue <- c:
					case err := <-errc:
						finish()
						return err
					case <-ctx.Done():
						finish()
						return nil
					}
				}
			}
		}
		if !o.Until.IsZero() && !h.Now().Before(o.Until) {
			finish()
			select {
			case err := <-errc:
				return err
			default:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			finish()
			return nil
		case err := <-errc:
			finish()
			return err
		case <-t.C:
		}
	}
}

type chunk struct {
	rs      []device.Reading
	payload []byte
}

type appPub struct {
	c     paho.Client
	topic string
	queue chan chunk
}

type sent struct {
	c   chunk
	tok paho.Token
}

// run publishes the appliance's chunks in order, keeping up to inflight of them
// unacknowledged on the wire (as firmware with a send window would), and sends again
// any that fails; the store de-duplicates by boot and sequence.
func (p *appPub) run(ctx context.Context, inflight int, onPublished func([]device.Reading, int)) error {
	var window []sent
	settle := func(s sent) error {
		for attempt := 0; ; attempt++ {
			acked := false
			select {
			case <-s.tok.Done():
				acked = s.tok.Error() == nil
			case <-time.After(10 * time.Second):
			case <-ctx.Done():
				return nil
			}
			if acked {
				if onPublished != nil {
					onPublished(s.c.rs, len(s.c.payload))
				}
				return nil
			}
			if attempt >= 5 {
				return fmt.Errorf("%w: %s after %d attempts: %v", errRefused, p.topic, attempt+1, s.tok.Error())
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
			s.tok = p.c.Publish(p.topic, 1, false, s.c.payload)
		}
	}
	for c := range p.queue {
		if len(window) >= inflight {
			if err := settle(window[0]); err != nil {
				return err
			}
			window = window[1:]
		}
		window = append(window, sent{c: c, tok: p.c.Publish(p.topic, 1, false, c.payload)})
	}
	for _, s := range window {
		if err := settle(s); err != nil {
			return err
		}
	}
	return nil
}

// errRefused is a publish the broker did not acknowledge in time.
var errRefused = errors.New("sim: publish not acknowledged")
