package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	bugst "go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/firmware-proto/frame"
	"github.com/hearth-iot/hearth/internal/metricset"
)

// Options configure a Source. Zero fields take the defaults given.
type Options struct {
	// Name labels the port in metrics ("port" label) and logs (default: Path, or
	// usb:VID:PID).
	Name string
	// Path is the port's device node. A symlink is resolved again at every (re)open.
	Path string
	// VID, PID and SerialNumber select a USB serial adapter through the operating
	// system's enumerator when Path is empty (hex ids, any case; empty SerialNumber:
	// the first adapter with VID and PID).
	VID, PID, SerialNumber string

	// Line settings (defaults: 115200 baud, 8 data bits, no parity, one stop bit).
	Baud     int
	DataBits int
	Parity   bugst.Parity
	StopBits bugst.StopBits

	// MaxFrame is the largest decoded frame accepted (default frame.MaxFrame).
	MaxFrame int
	// ReadTimeout bounds one read of the port (default 1s).
	ReadTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the back-off between attempts to open the
	// port (defaults 500ms and 30s).
	ReconnectMin, ReconnectMax time.Duration
	// MaxPending is how many batches may await the sink's commit before the port is no
	// longer read (default 8).
	MaxPending int
	// NacksPerSecond limits Nack frames (default 10, as SPEC.md §8.3 says).
	NacksPerSecond int
	// TimeSync is the period of TimeSync frames while the hub's clock is set
	// (default 1h; negative: never).
	TimeSync time.Duration

	// Committed returns the highest sequence n of a device's boot such that the hub
	// holds every item 1..n (0 if it knows none). The source answers a Hello for a boot
	// it has not seen since it started with it, so that a hub restart does not make
	// the device resend what is stored. nil: 0 (the device's retransmissions are then
	// de-duplicated by the sink).
	Committed func(device string, boot uint64) uint64

	// Retryable tells which refusals of the sink may pass later (a full store): the
	// batch is then refused with a Nack BUSY and the device sends it again. Any other
	// refusal is final (a reading the sink can never take): its items are stored as
	// error readings in their place (value RejectedItemCode, the reason in the label),
	// so that their sequences count as consumed, acknowledged, and counted as
	// "rejected". nil: every refusal may pass. cmd/hearth passes ingest.Retryable.
	Retryable func(error) bool

	// Now is the hub's wall clock (default time.Now).
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Source reads one appliance on one serial port. It implements device.Source.
type Source struct {
	o   Options
	log *slog.Logger
	lim *logLimiter
	m   *metrics
	set *metricset.Set // m's collectors, as registered

	// results carries commit outcomes from the sink's done callbacks to Run. Its
	// capacity is MaxPending, the most batches ever in flight, so done never blocks.
	results chan result
	sess    session
}

// New returns a Source for the port o describes. It fails if o names no port.
// DefaultOptions are the documented defaults of a port: the one place they are
// written (internal/config's serial entries start from these).
func DefaultOptions() Options {
	return Options{Baud: 115200, DataBits: 8, MaxFrame: frame.MaxFrame, MaxPending: 8, NacksPerSecond: 10,
		ReadTimeout: time.Second, ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second, TimeSync: time.Hour}
}

func New(o *Options) (*Source, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Path == "" && (opts.VID == "" || opts.PID == "") {
		return nil, errors.New("serial: no port: give Path, or VID and PID")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	d := DefaultOptions()
	def(&opts.Baud, d.Baud)
	def(&opts.DataBits, d.DataBits)
	def(&opts.MaxFrame, d.MaxFrame)
	def(&opts.MaxPending, d.MaxPending)
	def(&opts.NacksPerSecond, d.NacksPerSecond)
	defd(&opts.ReadTimeout, d.ReadTimeout)
	defd(&opts.ReconnectMin, d.ReconnectMin)
	defd(&opts.ReconnectMax, d.ReconnectMax)
	opts.ReconnectMax = max(opts.ReconnectMax, opts.ReconnectMin)
	if opts.TimeSync == 0 {
		opts.TimeSync = d.TimeSync
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retryable == nil {
		opts.Retryable = func(error) bool { return true }
	}
	if opts.Name == "" {
		opts.Name = opts.Path
		if opts.Name == "" {
			opts.Name = "usb:" + strings.ToLower(opts.VID) + ":" + strings.ToLower(opts.PID)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{o: opts, m: newMetrics(opts.Name), results: make(chan result, opts.MaxPending)}
	s.log = opts.Logger.With("component", "serial", "port", opts.Name)
	s.lim = newLogLimiter(s.log, 10*time.Second)
	s.sess.init(s)
	var err error
	if s.set, err = metricset.Register(opts.Registerer, s.m.cs...); err != nil {
		return nil, fmt.Errorf("serial %s: metrics: %w", opts.Name, err)
	}
	return s, nil
}

// Name implements device.Source.
func (s *Source) Name() string { return "serial:" + s.o.Name }

// Unregister removes the source's metrics from the registerer given to New.
func (s *Source) Unregister() { s.set.Unregister() }

// Run opens the port and serves the device until ctx ends, then returns nil. When the
// port cannot be opened, or vanishes (a USB adapter unplugged), Run waits with
// exponential back-off and jitter between ReconnectMin and ReconnectMax and opens it
// again, resolving Path (or the USB ids) anew. Sessions (the device's boot and what of
// it is committed) survive reconnects. Run must not be called twice at once.
func (s *Source) Run(ctx context.Context, sink device.Sink) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = s.o.ReconnectMin, s.o.ReconnectMax, 0
	bo.RandomizationFactor, bo.Multiplier = 0.2, 2
	bo.Reset()
	failures := 0
	for ctx.Err() == nil {
		port, name, err := s.open()
		if err != nil {
			failures++
			if failures == 1 {
				s.log.Warn("cannot open serial port; retrying with back-off", "err", err)
			} else {
				s.lim.Warn("open", "serial port still cannot be opened", "err", err, "attempts", failures)
			}
		} else {
			if failures > 0 {
				s.log.Info("serial port open again", "device", name, "attempts", failures)
			} else {
				s.log.Info("serial port open", "device", name)
			}
			failures = 0
			bo.Reset()
			err = s.serve(ctx, port, sink)
			if ctx.Err() != nil {
				break
			}
			s.m.reconnects.Inc()
			s.log.Warn("serial port lost; reopening", "device", name, "err", err)
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// resolve finds the device node to open now.
func (s *Source) resolve() (string, error) {
	if s.o.Path != "" {
		p, err := filepath.EvalSymlinks(s.o.Path)
		if err != nil {
			return "", fmt.Errorf("serial: %s: %w", s.o.Path, err)
		}
		return p, nil
	}
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return "", fmt.Errorf("serial: listing USB serial ports: %w", err)
	}
	for _, p := range ports {
		if p.IsUSB && strings.EqualFold(p.VID, s.o.VID) && strings.EqualFold(p.PID, s.o.PID) &&
			(s.o.SerialNumber == "" || p.SerialNumber == s.o.SerialNumber) {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("serial: no USB serial port with vid %s pid %s%s among %d ports", s.o.VID, s.o.PID,
		map[bool]string{true: " serial " + s.o.SerialNumber}[s.o.SerialNumber != ""], len(ports))
}

func (s *Source) open() (bugst.Port, string, error) {
	name, err := s.resolve()
	if err != nil {
		return nil, "", err
	}
	p, err := bugst.Open(name, &bugst.Mode{BaudRate: s.o.Baud, DataBits: s.o.DataBits, Parity: s.o.Parity, StopBits: s.o.StopBits})
	if err != nil {
		return nil, name, fmt.Errorf("serial: open %s: %w", name, err)
	}
	if err := p.SetReadTimeout(s.o.ReadTimeout); err != nil {
		p.Close()
		return nil, name, fmt.Errorf("serial: %s: set read timeout: %w", name, err)
	}
	return p, name, nil
}

// inFrame is what the reader hands the session: an intact frame (payload copied into
// buf, which the session gives back) or a BAD_VERSION fault to answer.
type inFrame struct {
	typ     frame.MsgType
	buf     []byte
	version uint8 // non-zero: a frame of this framing version was dropped
}

// serve runs one open port until it fails or ctx ends. It always closes the port.
func (s *Source) serve(ctx context.Context, port io.ReadWriteCloser, sink device.Sink) error {
	s.m.connected.Set(1)
	defer s.m.connected.Set(0)
	frames := make(chan inFrame)
	free := make(chan []byte, 2)
	for range 2 {
		free <- make([]byte, 0, s.o.MaxFrame)
	}
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go s.read(port, frames, free, stop, readErr)
	defer func() {
		close(stop)
		port.Close() // unblocks a Read in progress
		<-readErr
	}()
	s.sess.w = port
	defer func() { s.sess.w = nil }()
	var tick <-chan time.Time
	if s.o.TimeSync > 0 {
		t := time.NewTicker(s.o.TimeSync)
		defer t.Stop()
		tick = t.C
	}
	for {
		in := frames
		if s.sess.inflight >= s.o.MaxPending {
			in = nil // back-pressure: leave frames in the UART until a batch commits
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			readErr <- err
			return err
		case f := <-in:
			s.sess.handle(f, sink)
			if f.buf != nil {
				free <- f.buf[:0]
			}
		case r := <-s.results:
			s.sess.result(r)
		case <-tick:
			s.sess.timeSync()
		}
		if err := s.sess.flush(); err != nil {
			return err
		}
	}
}

// read runs in its own goroutine: it reads the port, splits frames and passes them on,
// until a read fails or stop is closed. It sends its final error on readErr.
func (s *Source) read(port io.Reader, frames chan<- inFrame, free chan []byte, stop <-chan struct{}, readErr chan<- error) {
	p := frame.NewParser(s.o.MaxFrame)
	var stopped bool
	send := func(f inFrame) {
		select {
		case frames <- f:
		case <-stop:
			stopped = true
		}
	}
	p.OnFault = func(e *frame.FaultError) {
		c := faultClass(e.Err)
		s.m.faults.WithLabelValues(c).Inc()
		s.lim.Warn(c, "dropped a damaged frame", "class", c, "err", e)
		if c == faultBadVersion && !stopped {
			send(inFrame{typ: e.Type, version: max(e.Version, 1)})
		}
	}
	buf := make([]byte, 1024)
	for {
		n, err := port.Read(buf)
		if n > 0 {
			s.m.bytes.Add(float64(n))
			p.Feed(buf[:n], func(f frame.Frame) {
				if stopped {
					return
				}
				var b []byte
				select {
				case b = <-free:
				case <-stop:
					stopped = true
					return
				}
				send(inFrame{typ: f.Type, buf: append(b, f.Payload...)})
			})
		}
		if stopped {
			readErr <- errors.New("stopped")
			return
		}
		if err != nil {
			readErr <- err
			return
		}
		select {
		case <-stop:
			readErr <- errors.New("stopped")
			return
		default:
		}
	}
}
