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
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
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
	// and payload size (for tests and the demo's raw-bytes count).
	OnPublished func(rs []device.Reading, payloadBytes int)
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
		pubs[a.ID] = &appPub{c: c, topic: devmqtt.NativeTopic(a.ID), window: make(chan struct{}, o.Inflight)}
	}
	log.Info("simulated household publishing", "persona", h.Persona(), "appliances", len(pubs), "from", h.Now().Format(time.DateOnly), "speed", o.Speed)

	realStart, simStart := o.Now(), h.Now()
	var buf []device.Reading
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	t := time.NewTicker(o.Tick)
	defer t.Stop()
	for {
		now := o.Now()
		target := now // caught up: real time
		if o.Speed > 0 && !math.IsInf(o.Speed, 1) {
			target = simStart.Add(time.Duration(float64(now.Sub(realStart)) * o.Speed))
		} else {
			target = h.Now().Add(24 * time.Hour)
		}
		if target.After(now) {
			target = now
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
				for len(rs) > 0 {
					n := min(len(rs), o.BatchMax)
					chunk := append([]device.Reading(nil), rs[:n]...)
					rs = rs[n:]
					payload := devmqtt.AppendNative(nil, chunk)
					select {
					case p.window <- struct{}{}:
					case <-ctx.Done():
						wg.Wait()
						return nil
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-p.window }()
						if err := p.publish(ctx, payload); err != nil {
							errMu.Lock()
							if firstErr == nil {
								firstErr = err
							}
							errMu.Unlock()
							return
						}
						if o.OnPublished != nil {
							o.OnPublished(chunk, len(payload))
						}
					}()
				}
			}
		}
		errMu.Lock()
		err := firstErr
		errMu.Unlock()
		if err != nil {
			wg.Wait()
			return err
		}
		if !o.Until.IsZero() && !h.Now().Before(o.Until) {
			wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

type appPub struct {
	c      paho.Client
	topic  string
	window chan struct{}
}

// errRefused is a publish the broker did not acknowledge in time.
var errRefused = errors.New("sim: publish not acknowledged")

// publish sends payload with QoS 1 and waits for its PUBACK, sending it again (the
// store de-duplicates by boot and sequence) until acknowledged or ctx ends.
func (p *appPub) publish(ctx context.Context, payload []byte) error {
	for attempt := 0; ; attempt++ {
		tok := p.c.Publish(p.topic, 1, false, payload)
		select {
		case <-tok.Done():
			if tok.Error() == nil {
				return nil
			}
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return nil
		}
		if attempt >= 5 {
			return fmt.Errorf("%w: %s after %d attempts: %v", errRefused, p.topic, attempt+1, tok.Error())
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
}
