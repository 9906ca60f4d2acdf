package periph

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// Sensor states in SensorStatus.
const (
	StateStarting = "starting" // not opened yet
	StateUp       = "up"       // open, reading
	StateStuck    = "stuck"    // open, but its raw value has not moved for stuck_after readings: dropped
	StateDown     = "down"     // missing or lost: retried with back-off (Error says why)
	StateStopped  = "stopped"  // the source ended
)

// SensorStatus is one sensor's state, for `hearth status`.
type SensorStatus struct {
	Name      string                    `json:"name"`
	Bus       string                    `json:"bus"`
	Device    string                    `json:"device"`
	State     string                    `json:"state"`
	Since     time.Time                 `json:"since"`
	Error     string                    `json:"error,omitempty"` // why it is down
	Committed uint64                    `json:"committed"`       // readings committed
	Last      map[device.Signal]float64 `json:"last,omitempty"`  // last committed value per signal
	Faults    map[string]uint64         `json:"faults,omitempty"`
}

// sensor is one configured sensor while the source runs.
type sensor struct {
	cfg    Sensor
	seq    *atomic.Uint64 // its device's reading numbers, shared with the device's other sensors
	log    *slog.Logger
	mc     *sensorMetrics
	door   *doorState // a gpio sensor's committed state
	linked *doorState // an hx711's door
	stuck  stuck      // its goroutine's only

	mu     sync.Mutex
	st     SensorStatus
	logged map[string]bool // fault reasons logged since the last open
}

func (sn *sensor) status() SensorStatus {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	st := sn.st
	st.Faults = maps.Clone(st.Faults)
	st.Last = maps.Clone(st.Last)
	return st
}

func (sn *sensor) setState(state string, now time.Time) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st.State != state {
		sn.st.State, sn.st.Since = state, now
	}
	if state == StateUp {
		sn.st.Error = ""
		sn.logged = nil
	}
}

func (sn *sensor) setDown(err error, now time.Time) {
	sn.setState(StateDown, now)
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if err != nil {
		sn.st.Error = err.Error()
	}
}

// unstuck marks a stuck sensor up again.
func (sn *sensor) unstuck(now time.Time) {
	sn.mu.Lock()
	stuck := sn.st.State == StateStuck
	sn.mu.Unlock()
	if stuck {
		sn.setState(StateUp, now)
		sn.log.Info("hub sensor no longer stuck")
	}
}

// fault counts one fault.
func (sn *sensor) fault(reason string) {
	sn.mc.faults.WithLabelValues(reason).Inc()
	sn.mu.Lock()
	sn.st.Faults[reason]++
	first := !sn.logged[reason]
	if first {
		if sn.logged == nil {
			sn.logged = map[string]bool{}
		}
		sn.logged[reason] = true
	}
	sn.mu.Unlock()
	if first {
		sn.log.Warn("hub sensor fault (logged once per reason until it is opened again; hearth_hub_sensor_faults_total counts them all)",
			"reason", reason)
	}
}

// faultErr counts one fault and logs its error at debug level.
func (sn *sensor) faultErr(reason string, err error) {
	sn.fault(reason)
	sn.log.Debug("hub sensor fault", "reason", reason, "err", err)
}

func (sn *sensor) committed(rs []device.Reading, m *metrics) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.st.Committed += uint64(len(rs))
	if sn.st.Last == nil {
		sn.st.Last = map[device.Signal]float64{}
	}
	for _, r := range rs {
		if r.Signal == device.SignalInventory {
			continue
		}
		sn.st.Last[r.Signal] = r.Value
		m.value.WithLabelValues(sn.cfg.Name, string(r.Signal)).Set(r.Value)
	}
}

// doorState is a door's committed state, read by the load cells behind it.
type doorState struct {
	mu    sync.Mutex
	known bool
	open  bool
	gen   uint64 // changes of state since the start
	at    time.Time
}

func (d *doorState) set(open bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.known || d.open != open {
		d.gen++
		d.at = now
	}
	d.known, d.open = true, open
}

func (d *doorState) get() (known, open bool, gen uint64, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.known, d.open, d.gen, d.at
}
