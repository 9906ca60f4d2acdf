// Package mosquittotest runs a real mosquitto broker (Debian's package; `make deps`
// installs it) on 127.0.0.1 with a free port, for tests of hearth against the broker
// households already run.
package mosquittotest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/internal/poll"
)

// Start runs mosquitto until the test ends and returns its address. extra is
// appended to its configuration (one directive a line). The broker keeps, for a
// persistent session whose client is away, everything (max_queued_messages 0: its
// default of 1000 would drop the rest). Its log is shown when the test fails.
func Start(t testing.TB, extra ...string) string {
	t.Helper()
	return Run(t, &Options{Extra: extra}).Addr
}

// Options configure Run. The zero value is Start's broker.
type Options struct {
	// Persistent keeps sessions and retained messages in a file across Restart
	// (mosquitto's persistence; written at every Stop).
	Persistent bool
	// Users, when set, are the only clients let in (allow_anonymous false): username
	// → password, in a mosquitto_passwd file.
	Users map[string]string
	// Extra directives, one a line.
	Extra []string
}

// Broker is a mosquitto that the test may stop and start again on the same address.
type Broker struct {
	Addr string // host:port

	t    testing.TB
	bin  string
	conf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	log    *strings.Builder
}

// Run starts mosquitto with o (nil: defaults) until the test ends.
func Run(t testing.TB, o *Options) *Broker {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			t.Fatal("mosquitto not installed: run `make deps` (Debian package mosquitto)")
		}
	}
	dir := t.TempDir()
	lines := []string{"max_queued_messages 0", "log_dest stderr"}
	if os.Geteuid() == 0 {
		// Run as root, mosquitto drops to the user "mosquitto", who cannot read the
		// test's private temporary directory (its password and persistence files).
		lines = append(lines, "user root")
	}
	if o.Persistent {
		lines = append(lines, "persistence true", "persistence_location "+dir+"/", "autosave_interval 0")
	} else {
		lines = append(lines, "persistence false")
	}
	if len(o.Users) > 0 {
		pwfile := filepath.Join(dir, "passwd")
		for u, p := range o.Users {
			if out, err := exec.Command("mosquitto_passwd", "-b", pwfileFlag(pwfile), u, p).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		lines = append(lines, "allow_anonymous false", "password_file "+pwfile)
	} else {
		lines = append(lines, "allow_anonymous true")
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	b := &Broker{t: t, bin: bin, conf: conf}
	t.Cleanup(func() {
		b.mu.Lock()
		log := b.log
		b.mu.Unlock()
		b.Stop()
		if t.Failed() && log != nil {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})
	// A free port is found by binding port 0 and closing it, so another process may
	// take it before mosquitto binds it: then mosquitto exits, and another port is
	// tried (the test never talks to a process it did not start).
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b.Addr = ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(b.Addr)
		body := strings.Join(append(append([]string{"listener " + port + " 127.0.0.1"}, lines...), o.Extra...), "\n") + "\n"
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		err = b.start()
		if err == nil {
			return b
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
	}
}

// errPortTaken: mosquitto could not bind its port (another process holds it).
var errPortTaken = errors.New("mosquittotest: port taken")

// pwfileFlag makes mosquitto_passwd create the file on its first user (-c would
// truncate it for every later one).
func pwfileFlag(f string) string {
	if _, err := os.Stat(f); err != nil {
		_ = os.WriteFile(f, nil, 0o600)
	}
	return f
}

// Start starts the broker again after Stop, on the same address, and waits until it
// listens.
func (b *Broker) Start() {
	b.t.Helper()
	var err error
	// The port was ours a moment ago: if something holds it still, try for a while.
	poll.Try(5*time.Second, func() bool { err = b.start(); return !errors.Is(err, errPortTaken) })
	if err != nil {
		b.t.Fatal(err)
	}
}

// start runs mosquitto and waits until it says it listens on b.Addr — its own log,
// not a dial, which could reach another process that took the port.
func (b *Broker) start() error {
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		return errors.New("mosquittotest: Start while running")
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	if b.log == nil {
		b.log = &strings.Builder{}
	}
	log := b.log
	from := log.Len() // what this run logs (the log spans every start, for a failed test)
	cmd.Stderr = &lockedWriter{mu: &b.mu, b: log}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("mosquitto: %w", err)
	}
	b.cmd = cmd
	b.mu.Unlock()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.mu.Lock()
	b.exited = exited
	b.mu.Unlock()
	_, port, _ := net.SplitHostPort(b.Addr)
	listening := "Opening ipv4 listen socket on port " + port + "."
	var text string
	gone := false
	up := poll.Try(10*time.Second, func() bool {
		b.mu.Lock()
		text = log.String()[from:]
		b.mu.Unlock()
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		return strings.Contains(text, listening)
	})
	switch {
	case gone:
		b.mu.Lock()
		b.cmd = nil
		b.mu.Unlock()
		if strings.Contains(text, "Address already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, b.Addr)
		}
		return fmt.Errorf("mosquitto exited at start:\n%s", text)
	case !up:
		return fmt.Errorf("mosquitto did not listen on %s within 10s:\n%s", b.Addr, text)
	}
	return nil
}

// Stop ends the broker gracefully (SIGTERM: a persistent one writes its file) and
// waits for it to exit. Stopping a stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd := b.cmd
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	b.mu.Lock()
	done := b.exited
	b.mu.Unlock()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart is Stop then Start.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.Start()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
