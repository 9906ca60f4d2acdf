package main

import (
	"fmt"
	"time"

	bugst "go.bug.st/serial"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/serial"
	"github.com/hearth-iot/hearth/edge/ingest"
)

var (
	parities = map[string]bugst.Parity{"none": bugst.NoParity, "odd": bugst.OddParity, "even": bugst.EvenParity,
		"mark": bugst.MarkParity, "space": bugst.SpaceParity}
	stopBits = map[string]bugst.StopBits{"1": bugst.OneStopBit, "1.5": bugst.OnePointFiveStopBits, "2": bugst.TwoStopBits}
)

// serialSources builds one device/serial Source per configured port.
func (a *agent) serialSources() ([]device.Source, error) {
	var out []device.Source
	for i, p := range a.cfg.Serial {
		src, err := serial.New(&serial.Options{
			Name: p.Label(), Path: p.Path, VID: p.USB.VID, PID: p.USB.PID, SerialNumber: p.USB.Serial,
			Baud: p.Baud, DataBits: p.DataBits, Parity: parities[p.Parity], StopBits: stopBits[p.StopBits],
			MaxFrame: p.MaxFrame, ReadTimeout: p.ReadTimeout.D(), ReconnectMin: p.ReconnectMin.D(),
			ReconnectMax: p.ReconnectMax.D(), MaxPending: p.MaxPending, NacksPerSecond: p.NacksPerSecond,
			TimeSync: timeSyncPeriod(p.TimeSync.D()), Committed: a.st.Committed, Retryable: ingest.Retryable, Logger: a.log, Registerer: a.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("serial[%d]: %w", i, err)
		}
		out = append(out, src)
	}
	return out, nil
}

// timeSyncPeriod maps the config's 0 (never) to the Source's negative.
func timeSyncPeriod(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
