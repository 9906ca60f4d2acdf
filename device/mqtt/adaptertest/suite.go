package adaptertest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt"
)

// Adapter describes one adapter to Run.
type Adapter struct {
	// New returns a fresh adapter as the agent builds it: its decoder, and its learner
	// (nil when it learns nothing). The suite calls it for each of its checks.
	New func(t testing.TB) (mqtt.Decoder, mqtt.Learner)
	// Messages are real messages — the adapter's testdata corpus, the captures in
	// ../shared/data/mqtt-formats — in the order devices send them: attributes and
	// discovery configs before the values they describe. Each is offered to the learner
	// first and, when the learner leaves it (mqtt.ErrNotMine), to the decoder, as
	// mqtt.Adapters does. At least one must give readings.
	Messages []Case
	// Foreign are topics of other adapters this one must leave: mqtt.ErrNotMine from
	// its decoder and its learner. The suite adds topics nobody reads.
	Foreign []string
	// MaxPayload is the largest payload the adapter parses (conv.MaxPayload for the
	// adapters of this module); 0 when it has no such bound, and Oversized must then
	// show the bound it has.
	MaxPayload int
	// Oversized are messages beyond one of the adapter's bounds (a native batch of
	// MaxBatch+1 readings): each must be refused (ErrMalformed or ErrLimit) without
	// readings.
	Oversized []Message
	// Flood, when set, checks the caps of the learner: Flood(i) is a message that makes
	// it hold one more thing (a device, a proposal) than Flood(i-1) did; Held reports
	// how many it holds and its cap.
	Flood func(i int) Message
	Held  func(l mqtt.Learner) (n, max int)
}

// Case is a real message and what it must give.
type Case struct {
	Message
	// Readings is how many readings it gives (0 for a learner's message); Any when the
	// harness leaves the count to the adapter's own tests.
	Readings int
	// Err is the class of the error it gives (mqtt.ErrMalformed, ...); nil for none;
	// AnyErr when the harness leaves it to the adapter's own tests. A
	// *mqtt.FieldErrors is of class mqtt.ErrMalformed.
	Err error
}

// Any and AnyErr leave a Case's count or error unchecked by RealMessages (the other
// checks hold for every message).
const Any = -1

// AnyErr: see Any.
var AnyErr = errors.New("adaptertest: any error or none")

// Cases makes cases of messages whose details the adapter's own tests assert.
func Cases(ms []Message) []Case {
	out := make([]Case, len(ms))
	for i, m := range ms {
		out[i] = Case{Message: m, Readings: Any, Err: AnyErr}
	}
	return out
}

// nobody are topics no adapter reads.
var nobody = []string{"hearth-test/nobody/reads/this", "$SYS/broker/uptime", "", "/", "a"}

// Run checks that an adapter keeps the promises every adapter makes (see the package
// documentation).
func Run(t *testing.T, a Adapter) {
	t.Helper()
	if a.New == nil || len(a.Messages) == 0 {
		t.Fatal("adaptertest: an Adapter needs New and Messages")
	}
	t.Run("RealMessages", func(t *testing.T) { realMessages(t, a) })
	t.Run("NotMine", func(t *testing.T) { notMine(t, a) })
	t.Run("HostileInput", func(t *testing.T) { hostile(t, a) })
	t.Run("Pure", func(t *testing.T) { pure(t, a) })
	t.Run("Concurrent", func(t *testing.T) { concurrent(t, a) })
	t.Run("Limits", func(t *testing.T) { limits(t, a) })
}

// offer hands m to l, then to d when l leaves it; learned reports which one took it.
func offer(t testing.TB, d mqtt.Decoder, l mqtt.Learner, m Message) (rs []device.Reading, err error, learned bool) {
	t.Helper()
	if l != nil {
		if err := CheckLearn(t, l, m.Topic, m.Payload, T0); !errors.Is(err, mqtt.ErrNotMine) {
			return nil, err, true
		}
	}
	rs, err = Check(t, d, m.Topic, m.Payload, T0)
	return rs, err, false
}

// learnAll offers every real message to the learner alone.
func learnAll(t testing.TB, l mqtt.Learner, cs []Case) {
	t.Helper()
	if l == nil {
		return
	}
	for _, c := range cs {
		_ = CheckLearn(t, l, c.Topic, c.Payload, T0)
	}
}

func realMessages(t *testing.T, a Adapter) {
	d, l := a.New(t)
	total := 0
	for _, c := range a.Messages {
		rs, err, learned := offer(t, d, l, c.Message)
		what := c.Name + " (" + c.Topic + ")"
		if learned && c.Readings > 0 {
			t.Errorf("%s: taken by the learner, want %d readings from the decoder", what, c.Readings)
		}
		if c.Readings != Any && len(rs) != c.Readings {
			t.Errorf("%s: %d readings %+v, want %d", what, len(rs), rs, c.Readings)
		}
		if c.Err != AnyErr {
			CheckErr(t, what, err, c.Err)
		}
		total += len(rs)
	}
	if total == 0 {
		t.Error("no real message gave a reading: the suite proves nothing")
	}
}

func notMine(t *testing.T, a Adapter) {
	d, l := a.New(t)
	learnAll(t, l, a.Messages)
	for _, topic := range append(append([]string(nil), a.Foreign...), nobody...) {
		for _, p := range [][]byte{nil, []byte(`{"temperature":21.5,"contact":true,"state":"ON"}`), []byte("21.5")} {
			if _, err := Check(t, d, topic, p, T0); !errors.Is(err, mqtt.ErrNotMine) {
				t.Errorf("decoder: topic %q is not its own, got %v, want ErrNotMine", topic, err)
			}
			if l != nil {
				if err := CheckLearn(t, l, topic, p, T0); !errors.Is(err, mqtt.ErrNotMine) {
					t.Errorf("learner: topic %q is not its own, got %v, want ErrNotMine", topic, err)
				}
			}
		}
	}
	// A topic a decoder reads is none of the learner's: mqtt.Adapters would hide it.
	if l != nil {
		d, _ := a.New(t)
		for _, c := range a.Messages {
			if rs, _ := d.Decode(c.Topic, c.Payload, T0); len(rs) > 0 {
				if err := l.Learn(c.Topic, c.Payload, T0); !errors.Is(err, mqtt.ErrNotMine) {
					t.Errorf("learner: took %s (%q), a message with readings: %v", c.Name, c.Topic, err)
				}
			}
		}
	}
}

// hostilePayloads are payloads no device should send, and some that only a broken one
// would: none may panic, give an invalid reading or an unclassified error.
var hostilePayloads = []string{
	"", " ", "null", "[]", "{}", "true", "0", "-0", "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
	`"NaN"`, `"\u0000"`, "\x00", "\xff\xfe\xfd", "{\"a\":", "[[[[[[[[", strings.Repeat("[", 20000),
	strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000),
	`{"temperature":1e308,"humidity":-1e308,"power":1e16,"battery":"NaN","contact":"maybe","state":null}`,
	`{"temperature":"21.5","humidity":"4e1","energy":"0x10","power":"1_000"}`,
	`{"temperature":{"value":1},"contact":[true],"occupancy":{}}`,
	`{"Time":"2018-02-15T17:37:10","ENERGY":{"Power":[1,2,"x"],"Total":null},"ZbReceived":{"0x1":{"Contact":"open"}}}`,
	`{"Time":"not a time","Epoch":-5,"TempUnit":"K","DS18B20":{"Temperature":-500}}`,
	`{"last_seen":"2201-01-01T00:00:00Z","contact":false}`, `{"last_seen":1e300}`,
	`{"signal":"door","value":1,"ts":-1}`, `{"signal":"door","value":1,"seq":5}`,
	`[{"signal":"door","value":1},{"signal":"mood","value":1}]`,
	"ON", "OFF", "online", "offline", "21.5", "true", "-273.15", "1e15", "1e16",
}

func hostile(t *testing.T, a Adapter) {
	d, l := a.New(t)
	learnAll(t, l, a.Messages)
	topics, payloads := ownTopics(a.Messages), realPayloads(a.Messages)
	rng := rand.New(rand.NewPCG(1, 2))
	var ps [][]byte
	for _, p := range hostilePayloads {
		ps = append(ps, []byte(p))
	}
	for _, p := range payloads {
		for _, cut := range []int{len(p) / 3, len(p) / 2, len(p) - 1} {
			if cut > 0 && cut < len(p) {
				ps = append(ps, bytes.Clone(p[:cut]))
			}
		}
		for range 3 {
			if len(p) == 0 {
				break
			}
			q := bytes.Clone(p)
			q[rng.IntN(len(q))] = byte(rng.IntN(256))
			ps = append(ps, q)
		}
	}
	for range 40 {
		q := make([]byte, rng.IntN(200))
		for i := range q {
			q[i] = byte(rng.IntN(256))
		}
		ps = append(ps, q)
	}
	for _, topic := range topics {
		for _, p := range ps {
			if l != nil {
				CheckLearn(t, l, topic, p, T0)
			}
			Check(t, d, topic, p, T0)
		}
		// Topics a device could not make: too long, too deep, wildcards, NUL, not UTF-8.
		for _, bad := range []string{topic + "/x", topic + "/$x/y", topic + "/+", topic + "\x00", topic + "\xff",
			strings.Repeat(topic+"/", 20), topic + "/" + strings.Repeat("a", 2000), strings.Replace(topic, "/", "//", 1)} {
			for _, p := range payloads {
				if l != nil {
					CheckLearn(t, l, bad, p, T0)
				}
				Check(t, d, bad, p, T0)
			}
		}
	}
}

// result is one decode, for comparison.
type result struct {
	rs  []device.Reading
	err string
}

// pure decodes the real messages in order and in reverse, with fresh adapters, before
// and after their learners learned: a decoder that changed with what it decoded (one
// that learned inside Decode) reads a value differently in the two orders.
func pure(t *testing.T, a Adapter) {
	for _, learn := range []bool{false, true} {
		run := func(reverse bool) []result {
			d, l := a.New(t)
			if learn {
				learnAll(t, l, a.Messages)
			}
			out := make([]result, len(a.Messages))
			for k := range a.Messages {
				i := k
				if reverse {
					i = len(a.Messages) - 1 - k
				}
				rs, err := Check(t, d, a.Messages[i].Topic, a.Messages[i].Payload, T0)
				out[i] = result{rs, errString(err)}
			}
			return out
		}
		fwd, rev := run(false), run(true)
		for i := range fwd {
			if !reflect.DeepEqual(fwd[i], rev[i]) {
				t.Errorf("learned %v: %s decodes to %+v in order, %+v in reverse order: Decode depends on what it decoded before",
					learn, a.Messages[i].Name, fwd[i], rev[i])
			}
		}
	}
}

// concurrent decodes the real messages from several goroutines at once (the race
// detector watches) and compares with one goroutine's results.
func concurrent(t *testing.T, a Adapter) {
	d, l := a.New(t)
	learnAll(t, l, a.Messages)
	want := make([]result, len(a.Messages))
	for i, c := range a.Messages {
		rs, err := Check(t, d, c.Topic, c.Payload, T0)
		want[i] = result{rs, errString(err)}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i, c := range a.Messages {
				rs, err := d.Decode(c.Topic, c.Payload, T0)
				if got := (result{rs, errString(err)}); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("%s decoded concurrently: %+v, alone: %+v", c.Name, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

func limits(t *testing.T, a Adapter) {
	d, l := a.New(t)
	learnAll(t, l, a.Messages)
	checked := 0
	if a.MaxPayload > 0 {
		// A real message padded to one byte more than the bound (trailing spaces: still
		// the same JSON or text) is refused, not parsed.
		for _, c := range a.Messages {
			if rs, _ := d.Decode(c.Topic, c.Payload, T0); len(rs) == 0 {
				continue
			}
			big := append(bytes.Clone(c.Payload), bytes.Repeat([]byte(" "), a.MaxPayload+1-len(c.Payload))...)
			rs, err := Check(t, d, c.Topic, big, T0)
			if len(rs) != 0 || !errors.Is(err, mqtt.ErrMalformed) {
				t.Errorf("%s padded to %d bytes: %d readings, %v; want it refused as malformed", c.Name, len(big), len(rs), err)
			}
			checked++
		}
		if checked == 0 {
			t.Error("no real message with readings to pad past MaxPayload")
		}
	}
	for _, m := range a.Oversized {
		rs, err := Check(t, d, m.Topic, m.Payload, T0)
		if len(rs) != 0 || !(errors.Is(err, mqtt.ErrMalformed) || errors.Is(err, mqtt.ErrLimit)) {
			t.Errorf("%s: %d readings, %v; want it refused", m.Name, len(rs), err)
		}
		checked++
	}
	if a.Flood != nil {
		_, l := a.New(t)
		_, max := a.Held(l)
		for i := range max + 5 {
			m := a.Flood(i)
			err := CheckLearn(t, l, m.Topic, m.Payload, T0)
			switch {
			case i < max && err != nil:
				t.Fatalf("flood message %d of %d (below the cap): %v", i+1, max, err)
			case i >= max && !errors.Is(err, mqtt.ErrLimit):
				t.Fatalf("flood message %d beyond the cap of %d: %v, want ErrLimit", i+1, max, err)
			}
		}
		if n, max := a.Held(l); n != max {
			t.Errorf("after the flood the learner holds %d, want its cap %d", n, max)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no bound checked: set MaxPayload, Oversized or Flood")
	}
}

// ownTopics are the distinct topics of the real messages.
func ownTopics(cs []Case) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cs {
		if !seen[c.Topic] {
			seen[c.Topic] = true
			out = append(out, c.Topic)
		}
	}
	return out
}

func realPayloads(cs []Case) [][]byte {
	out := make([][]byte, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Payload)
	}
	return out
}
