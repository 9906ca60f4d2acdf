package adaptertest

import (
	"bufio"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
)

// T0 is the "now" the adapter tests decode at.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Message is one real MQTT message of a corpus file.
type Message struct {
	Name, Topic string
	Payload     []byte
}

// Corpus is a testdata file of real messages, one a line: name<TAB>topic<TAB>payload
// (payload may be empty; lines starting with # are comments). Get marks a line as
// asserted; CheckAllUsed fails the test for a line no test asserted.
type Corpus struct {
	t     testing.TB
	file  string
	byKey map[string]Message
	order []string
	used  map[string]bool
}

// LoadCorpus reads a corpus file.
func LoadCorpus(t testing.TB, file string) *Corpus {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &Corpus{t: t, file: file, byKey: map[string]Message{}, used: map[string]bool{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("%s: line %q: want name<TAB>topic<TAB>payload", file, line)
		}
		if _, dup := c.byKey[parts[0]]; dup {
			t.Fatalf("%s: duplicate name %q", file, parts[0])
		}
		c.byKey[parts[0]] = Message{parts[0], parts[1], []byte(parts[2])}
		c.order = append(c.order, parts[0])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Get returns the message of a line and marks it asserted.
func (c *Corpus) Get(name string) Message {
	c.t.Helper()
	m, ok := c.byKey[name]
	if !ok {
		c.t.Fatalf("%s has no line %q", c.file, name)
	}
	c.used[name] = true
	return m
}

// All returns every message, in file order (fuzz seeds, the conformance suite).
func (c *Corpus) All() []Message {
	out := make([]Message, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.byKey[n])
	}
	return out
}

// CheckAllUsed fails the test for every line Get never returned.
func (c *Corpus) CheckAllUsed() {
	c.t.Helper()
	for _, n := range c.order {
		if !c.used[n] {
			c.t.Errorf("%s: line %q is asserted by no test", c.file, n)
		}
	}
}

// Want is an expected reading.
type Want struct {
	Dev     string
	Kind    device.Kind
	Sig     device.Signal
	Val     float64
	Unit    string
	Label   string
	DevTime time.Time
}

// W is the expected reading of device dev (kind, signal, value, unit, label) without a
// device time; At adds one.
func W(dev string, kind device.Kind, sig device.Signal, val float64, unit, label string) Want {
	return Want{Dev: dev, Kind: kind, Sig: sig, Val: val, Unit: unit, Label: label}
}

// At returns w with device time t.
func (w Want) At(t time.Time) Want {
	w.DevTime = t
	return w
}

// CheckReadings asserts that got are exactly ws, in order, each valid and without a hub
// time (a decoder never stamps one).
func CheckReadings(t testing.TB, what string, got []device.Reading, ws []Want) {
	t.Helper()
	if len(got) != len(ws) {
		t.Fatalf("%s: %d readings %+v, want %d %+v", what, len(got), got, len(ws), ws)
	}
	for i, w := range ws {
		g := got[i]
		if g.Device != w.Dev || g.Kind != w.Kind || g.Signal != w.Sig || math.Abs(g.Value-w.Val) > 1e-9 ||
			g.Unit != w.Unit || g.Label != w.Label || !g.DeviceTime.Equal(w.DevTime) {
			t.Errorf("%s: reading %d = {%s %s %s %v %q %q %v}, want {%s %s %s %v %q %q %v}", what, i,
				g.Device, g.Kind, g.Signal, g.Value, g.Unit, g.Label, g.DeviceTime,
				w.Dev, w.Kind, w.Sig, w.Val, w.Unit, w.Label, w.DevTime)
		}
		if err := g.Validate(); err != nil {
			t.Errorf("%s: reading %d: %v", what, i, err)
		}
		if !g.HubTime.IsZero() {
			t.Errorf("%s: reading %d: HubTime set by a decoder", what, i)
		}
	}
}

// CheckErr asserts the error's class (nil: no error) and that its message names every
// part.
func CheckErr(t testing.TB, what string, err, class error, parts ...string) {
	t.Helper()
	if class == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, class) {
		t.Errorf("%s: error %v, want %v", what, err, class)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

// Shared returns the path of a capture in ../shared/data/mqtt-formats (beside the
// repository), failing the test when it is not there.
func Shared(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("adaptertest: no go.mod above the test's directory")
		}
		dir = up
	}
	p := filepath.Join(dir, "..", "shared", "data", "mqtt-formats", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the MQTT captures must be at %s (../shared/data/mqtt-formats): %v", p, err)
	}
	return p
}
