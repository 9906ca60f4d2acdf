package sim

import (
	"math"
	"math/rand/v2"

	"github.com/hearth-iot/hearth/device"
)

type span struct{ start, end int64 }

type phase struct {
	start, end int64
	on         bool
}

// coldState is a fridge's or freezer's compressor and thermal state.
type coldState struct {
	dev                int
	fridge             bool
	init               bool
	on                 bool
	watts              float64 // of the last power reading
	phaseStart, until  int64   // current compressor phase; until is the next switch
	accounted          int64   // energy truth is accounted up to here
	sessions           []span  // door sessions of the last hours, in order
	phases             []phase // scratch: phases of the current unit
	duty, onW, offW    float64
	period             float64 // minutes of one on+off cycle
	setpoint, amp      float64 // °C; temperature swings ±amp over a cycle
	heat, maxHeat      float64 // °C per second of open door; cap
	wornDuty, wornTemp float64 // per week since Start
	wornW              float64 // relative on-watts growth per week
}

func newCold(dev int, k device.Kind, r *rand.Rand, worn bool) *coldState {
	c := &coldState{dev: dev, fridge: k == device.KindFridge}
	if c.fridge {
		c.duty = 0.30 + 0.12*r.Float64()
		c.onW = 85 + 30*r.Float64()
		c.setpoint = 3.5 + r.Float64()
		c.amp, c.heat, c.maxHeat = 0.6, 0.012, 8
	} else {
		c.duty = 0.35 + 0.10*r.Float64()
		c.onW = 90 + 40*r.Float64()
		c.setpoint = -19 + 2*r.Float64()
		c.amp, c.heat, c.maxHeat = 1.0, 0.02, 10
	}
	c.offW = 1.5 + r.Float64()
	c.period = 35 + 10*r.Float64()
	if worn {
		c.wornDuty = 0.03 + 0.01*r.Float64()
		c.wornW = 0.015
		c.wornTemp = 0.05
	}
	return c
}

// coldUnit emits the compressor switches (a power reading at each) and the
// temperature every 15 minutes (aligned to Start) of the unit's window, and
// accounts the fridge's energy truth.
//
// Compressor: each on+off cycle lasts period ±25%, split by the duty cycle (plus
// Normal noise of 0.03); an on phase is lengthened by twice the door-open time of the
// previous 30 minutes; an off phase ends 30 s after a door session longer than 45 s
// closes. A worn fridge's duty grows by wornDuty and its on-watts by wornW per week.
func (h *Household) coldUnit(g *unit, c *coldState) {
	r := h.rng
	ws, we := g.ws, g.we
	weeks := func(t int64) float64 { return float64(t-h.startMs) / (7 * 24 * hourMs) }
	duty := func(t int64) float64 {
		d := min(0.9, c.duty+c.wornDuty*weeks(t))
		return max(0.1, min(0.95, d+0.03*r.NormFloat64()))
	}
	watts := func(on bool, t int64) float64 {
		w := c.offW + 0.2*r.NormFloat64()
		if on {
			w = c.onW * (1 + c.wornW*weeks(t)) * (0.96 + 0.08*r.Float64())
		}
		return math.Round(max(0.5, w)*10) / 10
	}
	if !c.init {
		c.init = true
		d := duty(ws)
		c.on = r.Float64() < d
		p := c.period * minuteMs
		dur := (1 - d) * p
		if c.on {
			dur = d * p
		}
		el := r.Float64() * dur
		c.phaseStart, c.until = ws-int64(el), ws+int64(dur-el)+1
		c.watts = watts(c.on, ws)
		c.accounted = ws
		g.emit(c.dev, ws, device.SignalPower, c.watts, "", 0)
	}
	c.phases = append(c.phases[:0], phase{c.phaseStart, c.until, c.on})
	for {
		if !c.on {
			for _, s := range c.sessions {
				if s.end > c.phaseStart && s.end+30_000 < c.until && s.end-s.start > 45_000 {
					c.until = s.end + 30_000
					c.phases[len(c.phases)-1].end = c.until
					break
				}
			}
		}
		if c.until >= we {
			break
		}
		t := c.until
		h.coldAccount(g, c, t)
		c.on = !c.on
		d := duty(t)
		p := c.period * (0.75 + 0.5*r.Float64()) * minuteMs
		dur := (1 - d) * p
		if c.on {
			dur = d*p + 2*float64(c.openMs(t-30*minuteMs, t))
		}
		c.watts = watts(c.on, t)
		c.phaseStart, c.until = t, t+max(minuteMs, int64(dur))
		c.phases = append(c.phases, phase{c.phaseStart, c.until, c.on})
		g.emit(c.dev, t, device.SignalPower, c.watts, "", 0)
	}

	const tick = 15 * minuteMs
	k := (ws - h.startMs + tick - 1) / tick
	pi := 0
	for t := h.startMs + k*tick; t < we; t += tick {
		for pi+1 < len(c.phases) && c.phases[pi+1].start <= t {
			pi++
		}
		ph := c.phases[pi]
		frac := max(0, min(1, float64(t-ph.start)/float64(max(1, ph.end-ph.start))))
		v := c.setpoint + c.amp*(2*frac-1)
		if ph.on {
			v = c.setpoint + c.amp*(1-2*frac)
		}
		v += c.doorHeat(t) + c.wornTemp*weeks(t) + 0.05*r.NormFloat64()
		g.emit(c.dev, t, device.SignalTemperature, math.Round(v*10)/10, "", 0)
	}
	h.coldAccount(g, c, we)

	keep := 0
	for keep < len(c.sessions) && c.sessions[keep].end < we-3*hourMs {
		keep++
	}
	c.sessions = append(c.sessions[:0], c.sessions[keep:]...)
}

// openMs returns how long the door was open within [from, to).
func (c *coldState) openMs(from, to int64) int64 {
	var n int64
	for _, s := range c.sessions {
		a, b := max(s.start, from), min(s.end, to)
		if b > a {
			n += b - a
		}
	}
	return n
}

// doorHeat is the warming at t from door sessions: heat per second open, decaying
// with a 20-minute time constant after the door closes, capped at maxHeat.
func (c *coldState) doorHeat(t int64) float64 {
	var x float64
	for _, s := range c.sessions {
		if s.start >= t {
			break
		}
		e := min(s.end, t)
		ago := t - e
		if ago > 3*hourMs {
			continue
		}
		x += c.heat * float64(e-s.start) / 1000 * math.Exp(-float64(ago)/(20*minuteMs))
	}
	return min(x, c.maxHeat)
}

// coldAccount adds the fridge's energy and compressor time over [accounted, t) at the
// last power reading's watts to the truth of the days it spans.
func (h *Household) coldAccount(g *unit, c *coldState, t int64) {
	for from := c.accounted; from < t; {
		d := g.dayOf(from)
		seg := min(t, g.midAfter(d))
		if c.fridge {
			a := h.acc(d)
			a.FridgeEnergyWh += c.watts * float64(seg-from) / float64(hourMs)
			if c.watts >= CompressorOnWatts {
				a.FridgeCompressorOnSeconds += float64(seg-from) / 1000
			}
		}
		from = seg
	}
	c.accounted = t
}
