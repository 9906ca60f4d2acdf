// Package mosquittotest runs a real mosquitto broker (Debian's package; `make deps`
// installs it) on 127.0.0.1 with a free port, for tests of hearth against the broker
// households already run.
package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			t.Fatal("mosquitto not installed: run `make deps` (Debian package mosquitto)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	lines := append([]string{"listener " + port + " 127.0.0.1", "allow_anonymous true", "persistence false",
		"max_queued_messages 0", "log_dest stderr"}, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	var logBuf strings.Builder
	cmd.Stderr = &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(fmt.Errorf("mosquitto: %w", err))
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", logBuf.String())
		}
	})
	poll.Until(t, "mosquitto to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}
