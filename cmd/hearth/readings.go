package main

// `hearth readings DEVICE` and GET /v1/devices/{id}/readings: the last values a
// device sent, as stored, for a person checking that a device is wired up right.

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/internal/admin"
)

// StoredReading is one reading of GET /v1/devices/{id}/readings.
type StoredReading struct {
	Seq        uint64    `json:"seq"` // the store's sequence
	Signal     string    `json:"signal"`
	Value      float64   `json:"value"`
	Unit       string    `json:"unit,omitempty"`
	Label      string    `json:"label,omitempty"`
	Time       time.Time `json:"time"`                 // the device's time when ingest trusted it, else the hub's
	DeviceTime time.Time `json:"device_time,omitzero"` // the device's own time, when it has one
	HubTime    time.Time `json:"hub_time"`             // when hearth received it
	Boot       uint64    `json:"boot,omitempty"`       // the device's boot id, for devices that number their readings
	DeviceSeq  uint64    `json:"device_seq,omitempty"` // and the reading's number in that boot
}

// ReadingsReply is the answer of GET /v1/devices/{id}/readings.
type ReadingsReply struct {
	Device   string          `json:"device"`
	Kind     device.Kind     `json:"kind"`
	Signal   string          `json:"signal,omitempty"` // the signal asked for
	Readings []StoredReading `json:"readings"`         // newest first
	// Examined is how many events of the log were read back; Complete is false when
	// admin.readings_scan stopped the walk before Readings was full (older readings
	// of the device may exist).
	Examined int  `json:"examined"`
	Complete bool `json:"complete"`
}

// readings answers GET /v1/devices/{id}/readings from the store.
func (a *agent) readings(id string, q admin.ReadingsQuery) (any, error) {
	var kind device.Kind
	found := false
	for _, d := range a.st.Devices() {
		if d.ID == id {
			kind, found = d.Kind, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("device %q: %w: no reading of it is stored (`hearth status` lists the devices, `hearth device list` the registered ones)", id, admin.ErrNotFound)
	}
	if q.Signal != "" && !device.Signal(q.Signal).Valid() {
		return nil, fmt.Errorf("signal %q: %w: want one of %s", q.Signal, admin.ErrBadRequest, signalList())
	}
	rep := ReadingsReply{Device: id, Kind: kind, Signal: q.Signal, Readings: []StoredReading{}}
	examined, complete, err := a.st.Latest(id, a.cfg.Admin.ReadingsScan, func(seq uint64, r *device.Reading) bool {
		if q.Signal != "" && string(r.Signal) != q.Signal {
			return true
		}
		rep.Readings = append(rep.Readings, StoredReading{Seq: seq, Signal: string(r.Signal), Value: r.Value, Unit: r.Unit,
			Label: r.Label, Time: r.Time(), DeviceTime: r.DeviceTime, HubTime: r.HubTime, Boot: r.Boot, DeviceSeq: r.Seq})
		return len(rep.Readings) < q.Last
	})
	if err != nil {
		return nil, err
	}
	rep.Examined = examined
	rep.Complete = complete || len(rep.Readings) == q.Last
	return rep, nil
}

func signalList() string {
	ss := make([]string, 0, len(device.Signals()))
	for _, s := range device.Signals() {
		ss = append(ss, string(s))
	}
	return strings.Join(ss, ", ")
}

const readingsUsage = `usage: hearth readings DEVICE [--signal SIGNAL] [--last N] [--json] [--addr HOST:PORT] [--config FILE]
the last N readings (default 10) the running agent stored for DEVICE, newest first`

func cmdReadings(ctx context.Context, args []string, out io.Writer) error {
	fs, asJSON, parse := clientFlags("readings")
	signal := fs.String("signal", "", "only this signal (door, temperature, power, ...)")
	last := fs.Int("last", 10, "how many readings")
	// DEVICE may come before or after the flags.
	var dev string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dev, args = args[0], args[1:]
	}
	addr, err := parse(args)
	if err != nil {
		return err
	}
	if dev == "" && fs.NArg() == 1 {
		dev = fs.Arg(0)
	} else if fs.NArg() > 0 || dev == "" {
		return fmt.Errorf("%w: readings takes one DEVICE\n%s", errUsage, readingsUsage)
	}
	path := "/v1/devices/" + url.PathEscape(dev) + "/readings?last=" + strconv.Itoa(*last)
	if *signal != "" {
		path += "&signal=" + url.QueryEscape(*signal)
	}
	var rep ReadingsReply
	body, err := get(ctx, addr, path, &rep)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = out.Write(body)
		return err
	}
	printReadings(out, rep)
	return nil
}

func printReadings(out io.Writer, rep ReadingsReply) {
	what := "readings"
	if rep.Signal != "" {
		what = rep.Signal + " readings"
	}
	if len(rep.Readings) == 0 {
		fmt.Fprintf(out, "%s (%s): no %s stored", rep.Device, rep.Kind, what)
		if !rep.Complete {
			fmt.Fprintf(out, " among the newest %d events (admin.readings_scan)", rep.Examined)
		}
		fmt.Fprintln(out)
		return
	}
	fmt.Fprintf(out, "%s (%s): the last %d %s, newest first\n", rep.Device, rep.Kind, len(rep.Readings), what)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSIGNAL\tVALUE\tUNIT\tLABEL\tCLOCK")
	for _, r := range rep.Readings {
		clock := "hub"
		if !r.DeviceTime.IsZero() {
			clock = "device"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Local().Format("2006-01-02 15:04:05.000"), r.Signal,
			valueText(device.Signal(r.Signal), r.Value), r.Unit, r.Label, clock)
	}
	tw.Flush()
	if !rep.Complete {
		fmt.Fprintf(out, "(older readings not looked for: the newest %d events were read, admin.readings_scan)\n", rep.Examined)
	}
}

// valueText shows a value, with its meaning for on/off signals.
func valueText(sig device.Signal, v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	switch {
	case sig == device.SignalDoor && v == 1:
		return s + " (open)"
	case sig == device.SignalDoor && v == 0:
		return s + " (closed)"
	case sig.Binary() && v == 1:
		return s + " (on)"
	case sig.Binary() && v == 0:
		return s + " (off)"
	}
	return s
}
