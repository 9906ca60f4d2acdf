// Command appliance-sim is a simulated appliance firmware speaking hearth's UART
// protocol (firmware-proto/SPEC.md) from the device side, with fault injection.
//
//	appliance-sim serial --pty /tmp/fridge.tty --kind fridge --readings 5000 \
//	    --garbage 0.05 --drop-bytes 0.03 --bad-crc 0.03 --retransmit 0.05 --reboot-every 1300
//
// --pty LINK creates a pseudo-terminal and points the symlink LINK at its slave, for
// `hearth run` to open as a serial port (serial: [{path: LINK}]); --port PATH opens an
// existing serial device instead. The appliance sends Hello until acknowledged,
// numbers its items, retransmits what is not acknowledged (go-back-N, 1 s doubling to
// 30 s), keeps unacknowledged items across its simulated reboots, and exits when every
// item is acknowledged, printing what it did as JSON on standard output.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	bugst "go.bug.st/serial"

	"github.com/hearth-iot/hearth/device/serial/serialtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "appliance-sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "serial" {
		return errors.New("usage: appliance-sim serial (--pty LINK | --port PATH) [flags]; see -h")
	}
	fs := flag.NewFlagSet("serial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ptyLink := fs.String("pty", "", "create a pseudo-terminal and symlink its slave at this path")
	port := fs.String("port", "", "serial device to open instead of a pty")
	baud := fs.Int("baud", 115200, "baud rate with --port (8N1)")
	o := serialtest.Options{}
	fs.StringVar(&o.DeviceID, "id", "fridge-sim", "device id")
	fs.StringVar(&o.Kind, "kind", "fridge", "appliance kind")
	fs.IntVar(&o.Items, "readings", 1000, "items (readings, events, inventory changes) to send")
	fs.IntVar(&o.Batch, "batch", 8, "items per frame at most")
	fs.IntVar(&o.Queue, "queue", 256, "unacknowledged items kept")
	fs.Float64Var(&o.Rate, "rate", 0, "items per second (0: as fast as acknowledgements allow)")
	fs.DurationVar(&o.Timeout, "timeout", time.Second, "first retransmission timeout")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed")
	fs.Float64Var(&o.Faults.Garbage, "garbage", 0, "probability per frame of a foreign segment before it (noise, oversized, version 2, unknown type, bad protobuf)")
	fs.Float64Var(&o.Faults.DropBytes, "drop-bytes", 0, "probability per frame of losing one byte")
	fs.Float64Var(&o.Faults.BadCRC, "bad-crc", 0, "probability per frame of a flipped bit")
	fs.Float64Var(&o.Faults.Retransmit, "retransmit", 0, "probability per frame of sending it twice")
	fs.IntVar(&o.Faults.RebootEvery, "reboot-every", 0, "reboot (new boot id) after every N items; 0 never")
	unplug := fs.Int("unplug-every", 0, "with --pty: close the pty and open a new one under the same link after every N acknowledged items")
	deadline := fs.Duration("deadline", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if (*ptyLink == "") == (*port == "") {
		return errors.New("give exactly one of --pty LINK and --port PATH")
	}
	for name, p := range map[string]float64{"garbage": o.Faults.Garbage, "drop-bytes": o.Faults.DropBytes,
		"bad-crc": o.Faults.BadCRC, "retransmit": o.Faults.Retransmit} {
		if p < 0 || p > 1 {
			return fmt.Errorf("--%s %v is not a probability between 0 and 1", name, p)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *deadline)
	defer cancel()
	app := serialtest.New(o)
	start := time.Now()
	var err error
	if *port != "" {
		err = runPort(ctx, app, *port, *baud)
	} else {
		err = runPTY(ctx, app, *ptyLink, *unplug, stderr)
	}
	report := struct {
		serialtest.Stats
		Seconds float64 `json:"seconds"`
		Done    bool    `json:"done"`
	}{app.Stats(), time.Since(start).Seconds(), errors.Is(err, serialtest.ErrDone)}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if e := enc.Encode(report); e != nil {
		return e
	}
	if errors.Is(err, serialtest.ErrDone) {
		return nil
	}
	return err
}

func runPort(ctx context.Context, app *serialtest.Appliance, path string, baud int) error {
	p, err := bugst.Open(path, &bugst.Mode{BaudRate: baud, DataBits: 8})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer p.Close()
	go func() { <-ctx.Done(); p.Close() }()
	return app.Run(ctx, p)
}

func runPTY(ctx context.Context, app *serialtest.Appliance, link string, unplugEvery int, stderr io.Writer) error {
	for {
		p, err := serialtest.OpenPTY()
		if err != nil {
			return err
		}
		tmp := link + ".new"
		os.Remove(tmp)
		if err := os.Symlink(p.Path, tmp); err != nil {
			p.Close()
			return err
		}
		if err := os.Rename(tmp, link); err != nil {
			p.Close()
			return err
		}
		abs, _ := filepath.Abs(link)
		fmt.Fprintf(stderr, "appliance-sim: %s -> %s\n", abs, p.Path)
		runCtx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx, p.Master) }()
		var unplugged bool
		if unplugEvery > 0 {
			next := app.Stats().Acked + unplugEvery
			t := time.NewTicker(10 * time.Millisecond)
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-t.C:
					if app.Stats().Acked >= next && !app.Done() {
						unplugged = true
						p.Close()
						err = <-done
						break wait
					}
				}
			}
			t.Stop()
		} else {
			err = <-done
		}
		stopRun()
		p.Close()
		if !unplugged {
			os.Remove(link)
			return err
		}
		fmt.Fprintf(stderr, "appliance-sim: unplugged after %d acknowledged items\n", app.Stats().Acked)
	}
}
