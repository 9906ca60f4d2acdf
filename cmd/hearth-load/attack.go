package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The attack modes measure what a stranger on the LAN can do to a device's
// connections: each runs hearth (or any hearth binary, e.g. an older build, to
// compare) as a child process, attacks it from one or more addresses of 127/8, and
// measures a legitimate device connecting from 127.0.0.1 beside the attack.
//
//	hearth-load -mode slowloris [-attackers 64] [-probes 50]
//	hearth-load -mode lockout [-duration 60s] [-attack-rate 5] [-probe-every 2s]

// attackOptions are the flags of the attack modes.
type attackOptions struct {
	attackers  int           // slowloris: half-open connections the attacker keeps open
	attackFrom string        // slowloris: the attacker's addresses, comma-separated
	probes     int           // slowloris: the device's connects per phase
	duration   time.Duration // lockout: how long the attack runs
	attackRate float64       // lockout: wrong passwords per second, from rotating addresses
	probeEvery time.Duration // lockout: time between the device's connects
}

// connectOnce connects to addr from the local address from ("" for any) as user with
// client id, and returns the CONNACK's return code (-1: closed without one) and the
// time from dialing to the CONNACK. The connection is closed before it returns.
func connectOnce(addr, from, clientID, user, pw string, timeout time.Duration) (int, time.Duration, error) {
	d := net.Dialer{Timeout: timeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	start := time.Now()
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return -1, time.Since(start), err
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := c.Write(connectPacket(clientID, user, pw)); err != nil {
		return -1, time.Since(start), nil // closed by the broker before the CONNECT was sent
	}
	var ack [4]byte
	if _, err := io.ReadFull(bufio.NewReader(c), ack[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return -1, time.Since(start), fmt.Errorf("no CONNACK within %s", timeout)
		}
		return -1, time.Since(start), nil
	}
	lat := time.Since(start)
	if ack[0] != 0x20 {
		return -1, lat, fmt.Errorf("not a CONNACK: %x", ack)
	}
	_, _ = c.Write([]byte{0xE0, 0}) // DISCONNECT
	return int(ack[3]), lat, nil
}

// probeStats are the device's connects in one phase.
type probeStats struct {
	name     string
	tries    int
	ok       int
	lat      []time.Duration // of the successful ones
	failures map[string]int  // why the others failed
}

func (p *probeStats) add(code int, lat time.Duration, err error) {
	p.tries++
	switch {
	case err != nil:
		p.failures[err.Error()]++
	case code == 0:
		p.ok++
		p.lat = append(p.lat, lat)
	case code < 0:
		p.failures["closed without CONNACK"]++
	default:
		p.failures[fmt.Sprintf("CONNACK %#x", code)]++
	}
}

func (p *probeStats) print() {
	slices.Sort(p.lat)
	pct := func(q float64) time.Duration {
		if len(p.lat) == 0 {
			return 0
		}
		return p.lat[min(len(p.lat)-1, int(float64(len(p.lat))*q))].Round(10 * time.Microsecond)
	}
	fmt.Printf("%-24s device connects: %3d of %3d (%5.1f%%)  latency p50 %9s  p99 %9s", p.name, p.ok, p.tries,
		100*float64(p.ok)/float64(max(p.tries, 1)), pct(0.5), pct(0.99))
	var why []string
	for k, n := range p.failures {
		why = append(why, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(why)
	if len(why) > 0 {
		fmt.Printf("  failed: %s", strings.Join(why, ", "))
	}
	fmt.Println()
}

// printConnects prints hearth's hearth_broker_connects_total by result.
func printConnects(admin string) {
	var out []string
	for _, r := range []string{"accepted", "bad_credentials", "locked_out", "too_many_connecting", "too_many_connecting_from_source",
		"connecting_evicted", "too_many_clients"} {
		if v := metricValue(admin, fmt.Sprintf(`hearth_broker_connects_total{result=%q}`, r)); v > 0 {
			out = append(out, fmt.Sprintf("%s %.0f", r, v))
		}
	}
	fmt.Printf("hearth_broker_connects_total: %s\n", strings.Join(out, ", "))
}

// runSlowloris measures the device's connects from 127.0.0.1, first alone, then
// while an attacker at o.attackFrom keeps o.attackers connections open that sent the
// start of a CONNECT and nothing more (reopening each one the broker closes).
func runSlowloris(bin, dir string, o attackOptions) error {
	h, err := startHearth(bin, dir, 1, "error", "", "")
	if err != nil {
		return err
	}
	defer h.stop()
	dev := h.creds[0]
	probe := func(name string) *probeStats {
		p := &probeStats{name: name, failures: map[string]int{}}
		for range o.probes {
			p.add(connectOnce(h.broker, "127.0.0.1", dev[0], dev[0], dev[1], 5*time.Second))
		}
		return p
	}
	fmt.Printf("slowloris: %d half-open connections from %s; the device connects %d times from 127.0.0.1 in each phase\n",
		o.attackers, o.attackFrom, o.probes)
	from := strings.Split(o.attackFrom, ",")
	alone := probe("without attack")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var open, refused atomic.Int64
	for i := range o.attackers {
		ip := net.ParseIP(strings.TrimSpace(from[i%len(from)]))
		if ip == nil {
			close(stop)
			return fmt.Errorf("-attack-from %q: not an address", o.attackFrom)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
				c, err := d.Dial("tcp", h.broker)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				held := time.Now()
				_, _ = c.Write([]byte{0x10, 0x7F, 0x00}) // a CONNECT announcing 127 bytes, never sent
				open.Add(1)
				go func() { <-stop; c.Close() }()
				_, _ = io.Copy(io.Discard, c) // until the broker closes it
				c.Close()
				open.Add(-1)
				if time.Since(held) < 100*time.Millisecond {
					refused.Add(1)
					time.Sleep(50 * time.Millisecond) // refused at once: do not spin
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() < int64(o.attackers) && refused.Load() < int64(o.attackers) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	attacked := probe("during attack")
	fmt.Printf("attacker: %d connections open at the end, %d closed at once by the broker\n", open.Load(), refused.Load())
	close(stop)
	wg.Wait()
	alone.print()
	attacked.print()
	printConnects(h.admin)
	return nil
}

// runLockout measures the device's connects from 127.0.0.1 (right password, its own
// name as client id) while a stranger sends wrong passwords with the device's name
// and client id, o.attackRate a second, each from the next address of 127.0.0.2..9.
func runLockout(bin, dir string, o attackOptions) error {
	h, err := startHearth(bin, dir, 1, "error", "", "")
	if err != nil {
		return err
	}
	defer h.stop()
	dev := h.creds[0]
	fmt.Printf("lockout: wrong passwords as %s (client id %s) at %.1f/s from 127.0.0.2..9 for %s; the device connects every %s from 127.0.0.1\n",
		dev[0], dev[0], o.attackRate, o.duration, o.probeEvery)
	alone := &probeStats{name: "without attack", failures: map[string]int{}}
	for range 20 {
		alone.add(connectOnce(h.broker, "127.0.0.1", dev[0], dev[0], dev[1], 5*time.Second))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var attempts atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / o.attackRate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			from := fmt.Sprintf("127.0.0.%d", 2+i%8)
			_, _, _ = connectOnce(h.broker, from, dev[0], dev[0], fmt.Sprintf("guess-%d", i), 5*time.Second)
			attempts.Add(1)
		}
	}()
	attacked := &probeStats{name: "during attack", failures: map[string]int{}}
	end := time.Now().Add(o.duration)
	for time.Now().Before(end) {
		attacked.add(connectOnce(h.broker, "127.0.0.1", dev[0], dev[0], dev[1], 5*time.Second))
		time.Sleep(o.probeEvery)
	}
	close(stop)
	wg.Wait()
	fmt.Printf("attacker: %d wrong passwords\n", attempts.Load())
	alone.print()
	attacked.print()
	printConnects(h.admin)
	return nil
}

// runAttack runs mode in a fresh temporary directory.
func runAttack(mode, bin string, o attackOptions) error {
	dir, err := os.MkdirTemp("", "hearth-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	switch mode {
	case "slowloris":
		return runSlowloris(bin, dir, o)
	case "lockout":
		return runLockout(bin, dir, o)
	}
	return fmt.Errorf("unknown -mode %q: bench, flash, slowloris or lockout", mode)
}
