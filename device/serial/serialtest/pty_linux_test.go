package serialtest

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// Close ends a Write blocked on the master because the hub, which holds the slave
// open, does not read it (the buffer is full), as pulling the cable ends an
// appliance's write: a test's appliance must not outlive its link. pty.Open leaves
// the master in blocking mode (its ioctls call Fd), and a blocking file's Close waits
// for the Write, which waited for the hub: TestPTYUnplugReplug hung for 20 minutes.
func TestCloseEndsABlockedWrite(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	hub, err := os.OpenFile(p.Path, os.O_RDWR|syscall.O_NOCTTY, 0) // the hub's port, not read
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	buf := make([]byte, 4096)
	written := make(chan int, 1024)
	done := make(chan error, 1)
	go func() {
		for {
			n, err := p.Master.Write(buf)
			written <- n
			if err != nil {
				done <- err
				return
			}
		}
	}()
	// Wait until the writes stop coming: the buffer is full and the Write blocks.
	total := 0
	for quiet := false; !quiet; {
		select {
		case n := <-written:
			total += n
		case err := <-done:
			t.Fatalf("a Write failed before Close, after %d bytes: %v", total, err)
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	if total == 0 {
		t.Fatal("nothing was written before the buffer filled")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("the blocked Write ended with %v, want os.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("a Write blocked on a full buffer (after %d bytes) was still blocked 30 s after Close", total)
	}
}
