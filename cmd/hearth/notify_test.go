package main

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where systemd would ($NOTIFY_SOCKET) and returns the states
// hearth sends, one per datagram, in order.
func notifySocket(t *testing.T) (path string, states <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func nextState(t *testing.T, states <-chan string) string {
	t.Helper()
	select {
	case s := <-states:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no state from hearth within 30s")
		return ""
	}
}

// TestSystemdNotify: under systemd (Type=notify, WatchdogSec=) the agent says READY=1
// once it serves, pings WATCHDOG=1 while alive, and says STOPPING=1 when it stops.
func TestSystemdNotify(t *testing.T) {
	path, states := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "40000") // 40ms: a ping every 20ms
	t.Setenv("WATCHDOG_PID", "")
	a, err := newAgent(testConfig(t), testLogger(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.run(ctx) }()
	if s := nextState(t, states); !strings.HasPrefix(s, "READY=1") {
		t.Fatalf("first state %q, want READY=1", s)
	}
	for range 3 {
		if s := nextState(t, states); s != "WATCHDOG=1" {
			t.Fatalf("state %q, want WATCHDOG=1", s)
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	for {
		switch s := nextState(t, states); s {
		case "STOPPING=1":
			return
		case "WATCHDOG=1":
		default:
			t.Fatalf("state %q before STOPPING=1", s)
		}
	}
}

// TestWatchdogWithholdsPingWhileNotAlive: no WATCHDOG=1 is sent while the liveness
// check fails, so systemd restarts a hung agent; the failed pass is an error (shown
// in the stage's health).
func TestWatchdogWithholdsPingWhileNotAlive(t *testing.T) {
	path, states := notifySocket(t)
	n := newNotifier(func(string) string { return path })
	wedged := true
	step := watchdogStep(n, time.Second, func(context.Context, *liveness) error {
		if wedged {
			return errors.New("store wedged")
		}
		return nil
	})
	for range 3 {
		if err := step(context.Background()); err == nil || !strings.Contains(err.Error(), "store wedged") {
			t.Fatalf("a pass while not alive: %v", err)
		}
	}
	// A marker, then a pass that is alive: datagrams keep their order, so a ping sent
	// while not alive would arrive before the marker.
	if err := n.notify("MARK"); err != nil {
		t.Fatal(err)
	}
	wedged = false
	if err := step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := nextState(t, states); s != "MARK" {
		t.Fatalf("first datagram %q: a ping was sent while not alive", s)
	}
	if s := nextState(t, states); s != "WATCHDOG=1" {
		t.Fatalf("state %q after the pass that was alive", s)
	}
}

func TestWatchdogInterval(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if d, err := watchdogInterval(env(map[string]string{"WATCHDOG_USEC": "30000000"})); err != nil || d != 30*time.Second {
		t.Fatalf("30000000 µs: %v, %v", d, err)
	}
	if d, _ := watchdogInterval(env(map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})); d != 0 {
		t.Fatalf("a watchdog meant for pid 1 taken: %v", d)
	}
	if _, err := watchdogInterval(env(map[string]string{"WATCHDOG_USEC": "soon"})); err == nil || !strings.Contains(err.Error(), "WATCHDOG_USEC") {
		t.Fatalf("a bad WATCHDOG_USEC: %v", err)
	}
	if n := newNotifier(env(nil)); n.notify("READY=1") != nil || n.addr != nil {
		t.Fatal("without NOTIFY_SOCKET nothing is sent and nothing fails")
	}
	if n := newNotifier(env(map[string]string{"NOTIFY_SOCKET": "@hearth"})); n.addr.Name != "\x00hearth" {
		t.Fatalf("abstract socket: %q", n.addr.Name)
	}
}
