package serialtest

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal standing in for a UART: the appliance writes to Master, the
// hub opens Path (the slave) as a serial port. The slave is kept open (in raw mode)
// by the PTY itself, so the hub may close and reopen it without hanging up the master;
// Close is the cable pulled out.
type PTY struct {
	Master *os.File
	Path   string
	slave  *os.File
}

// OpenPTY opens a new pseudo-terminal with its slave in raw mode.
func OpenPTY() (*PTY, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("serialtest: open pty: %w", err)
	}
	t, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		err = unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, t)
	}
	if err != nil {
		m.Close()
		s.Close()
		return nil, fmt.Errorf("serialtest: pty raw mode: %w", err)
	}
	// The master in non-blocking mode under Go's poller, so that Close ends a Write
	// blocked on a full buffer (a hub that stopped reading) as pulling a cable ends
	// it: a blocking master's Write outlives Close, and a test hung for 20 minutes.
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("serialtest: pty master: %w", err)
	}
	return &PTY{Master: os.NewFile(uintptr(fd), "/dev/ptmx"), Path: s.Name(), slave: s}, nil
}

// Close closes both ends: the hub's reads of the slave then fail, as when a USB
// adapter is unplugged.
func (p *PTY) Close() error {
	err := p.Master.Close()
	p.slave.Close()
	return err
}
