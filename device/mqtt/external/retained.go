package external

import (
	"log/slog"
	"sync"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// maxRetainKeys bounds the (device, signal, label) values retainCache keeps: past
// it, a new key is not kept, and a retained message of it is stored (a repeat
// stored, never a new value lost).
const maxRetainKeys = 4096

// retainCache knows the latest value of each device, signal and label: those the
// store held when the first retained message came (Options.Latest), and
// those handed to the sink since. A retained message is compared with it. Nil-safe
// and free when Latest is not set. Safe for concurrent use.
type retainCache struct {
	latest func() ([]device.Reading, error)

	mu     sync.Mutex
	loaded bool
	last   map[retainKey]retainVal
}

type retainKey struct {
	dev   string
	sig   device.Signal
	label string
}

type retainVal struct {
	value float64
	unit  string
	at    time.Time // the device's time, zero without one
}

func newRetainCache(latest func() ([]device.Reading, error)) *retainCache {
	if latest == nil {
		return nil
	}
	return &retainCache{latest: latest, last: make(map[retainKey]retainVal)}
}

func keyOf(r *device.Reading) retainKey { return retainKey{r.Device, r.Signal, r.Label} }

func valOf(r *device.Reading) retainVal { return retainVal{r.Value, r.Unit, r.DeviceTime} }

// repeats reports whether r says nothing v did not: a device time not after v's, or,
// without device times on both, the same value and unit.
func (v retainVal) repeats(r *device.Reading) bool {
	if !r.DeviceTime.IsZero() && !v.at.IsZero() {
		return !r.DeviceTime.After(v.at)
	}
	return r.Value == v.value && r.Unit == v.unit
}

// fresh returns the readings of a retained message that are new, loading what the
// store holds the first time.
func (c *retainCache) fresh(rs []device.Reading, log *slog.Logger) []device.Reading {
	if c == nil {
		return rs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		c.loaded = true
		start := time.Now()
		stored, err := c.latest()
		if err != nil {
			// Without them every retained value counts as new: a repeat is stored,
			// nothing is lost.
			log.Warn("cannot read the latest stored values: retained messages are stored even when they repeat them", "err", err)
		}
		for i := range stored {
			k := keyOf(&stored[i])
			if _, ok := c.last[k]; !ok && len(c.last) < maxRetainKeys {
				c.last[k] = valOf(&stored[i]) // what this source handed on since is newer
			}
		}
		log.Debug("latest stored values loaded for retained messages", "values", len(stored), "took", time.Since(start))
	}
	out := rs[:0:0]
	for i := range rs {
		if v, ok := c.last[keyOf(&rs[i])]; ok && v.repeats(&rs[i]) {
			continue
		}
		out = append(out, rs[i])
	}
	return out
}

// retainUndo is what submitted changed, for undo.
type retainUndo []retainChange

type retainChange struct {
	k         retainKey
	prev, now retainVal
	had       bool
}

// submitted records the readings handed to the sink as the latest values.
func (c *retainCache) submitted(rs []device.Reading) retainUndo {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u := make(retainUndo, 0, len(rs))
	for i := range rs {
		k, v := keyOf(&rs[i]), valOf(&rs[i])
		prev, had := c.last[k]
		if !had && len(c.last) >= maxRetainKeys {
			continue
		}
		c.last[k] = v
		u = append(u, retainChange{k, prev, v, had})
	}
	return u
}

// undo takes back what submitted recorded, for readings the sink refused, unless a
// later message changed a value since.
func (c *retainCache) undo(u retainUndo) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(u) - 1; i >= 0; i-- {
		x := u[i]
		if cur, ok := c.last[x.k]; !ok || cur != x.now {
			continue
		}
		if x.had {
			c.last[x.k] = x.prev
		} else {
			delete(c.last, x.k)
		}
	}
}
