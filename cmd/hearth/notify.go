package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
)

// systemd's readiness and watchdog protocol (sd_notify(3)), without libsystemd: each
// state is one datagram to the unix socket named by $NOTIFY_SOCKET. The shipped unit
// (configs/hearth.service) is Type=notify with WatchdogSec=, so systemd knows when
// hearth is ready and restarts it if it hangs. Outside systemd the variables are unset
// and nothing is sent.

// notifier sends states to systemd; the zero value (no socket) sends nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier reads $NOTIFY_SOCKET ("" or unset: no systemd). An abstract socket is
// written with a leading '@'.
func newNotifier(getenv func(string) string) notifier {
	path := getenv("NOTIFY_SOCKET")
	if path == "" {
		return notifier{}
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	return notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// notify sends one state ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=…").
func (n notifier) notify(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr.Name, err)
	}
	return nil
}

// watchdogInterval is how often systemd expects WATCHDOG=1 ($WATCHDOG_USEC), or 0
// when there is no watchdog or it is meant for another process ($WATCHDOG_PID).
func watchdogInterval(getenv func(string) string) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// watchdogStep is one watchdog pass, run every half of systemd's interval: it pings
// systemd if alive answers within timeout (a quarter of the interval). A hung store
// (an fsync that never returns, a lock never released) stops the pings, and systemd
// restarts hearth; a refused intake (a full disk) does not, since a restart would not
// help and /readyz already says it. A withheld ping is the step's error: shown.
func watchdogStep(n notifier, timeout time.Duration, alive func(context.Context, *liveness) error) func(context.Context) error {
	var l liveness
	return func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := alive(actx, &l)
		cancel()
		if err != nil {
			return fmt.Errorf("not alive, withholding the ping to systemd: %w", err)
		}
		return n.notify("WATCHDOG=1")
	}
}

// liveness is what the watchdog remembers between two checks.
type liveness struct {
	seq     uint64 // the store's last sequence at the previous check
	pending bool   // readings were waiting for the writer at the previous check
}

// alive answers whether the store still serves a read (the lock every stage and
// source goes through) and its writer still commits: readings waiting at two checks
// in a row with no commit in between mean a writer stuck in a write or an fsync.
func (a *agent) alive(ctx context.Context, l *liveness) error {
	done := make(chan error, 1)
	go func() { done <- a.st.View(func(*store.Tx) error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("a store read did not return: %w", ctx.Err())
	}
	seq, pending := a.st.LastSeq(), a.st.Pending() > 0
	stuck := l.pending && pending && seq == l.seq && a.st.Failed() == nil
	l.seq, l.pending = seq, pending
	if stuck {
		return fmt.Errorf("the store's writer committed nothing since the last check with readings waiting (sequence %d)", seq)
	}
	return nil
}

// cmdReady exits 0 when the running agent's /readyz answers ready, 1 (with why)
// otherwise: a container's HEALTHCHECK or a script's wait.
func cmdReady(ctx context.Context, args []string, out io.Writer) error {
	_, _, parse := clientFlags("ready")
	addr, err := parse(args)
	if err != nil {
		return err
	}
	body, err := get(ctx, addr, "/readyz", nil)
	if err != nil {
		return err
	}
	_, err = out.Write(body)
	return err
}
