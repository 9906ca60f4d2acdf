package replay

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
)

// Entity maps one Home Assistant entity to a hearth device and signal.
type Entity struct {
	Device string        `yaml:"device"` // hearth device id (default: the entity id with '.' kept)
	Kind   device.Kind   `yaml:"kind"`
	Signal device.Signal `yaml:"signal"`
}

// Mapping is a replay configuration file (docs/replay.md).
type Mapping struct {
	Timezone  string            `yaml:"timezone"`   // IANA zone of the household (default UTC)
	RulesFile string            `yaml:"rules_file"` // tag rules (default: the built-in ones)
	PeakHours []int             `yaml:"peak_hours"` // [from, to) local hours (default 17, 21)
	Sensitive bool              `yaml:"sensitive"`  // consent to sensitive tags (presence.away)
	Entities  map[string]Entity `yaml:"entities"`

	Location *time.Location `yaml:"-"`
}

// LoadMapping reads and checks a replay configuration; errors name the file and line.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseMapping(b, path)
}

// ParseMapping decodes a replay configuration strictly (an unknown key is an error).
func ParseMapping(src []byte, name string) (*Mapping, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if err := m.Check(name, &root); err != nil {
		return nil, err
	}
	return &m, nil
}

// Check applies the defaults and checks a decoded mapping (also one inlined in a
// larger file: root is the file's YAML, for the line numbers of the errors, which
// name the file). It resolves Location and fills each entity's default device.
func (m *Mapping) Check(name string, root *yaml.Node) error {
	var errs []error
	lineOf := func(key string) int { return findKeyLine(root, key) }
	if m.Timezone == "" {
		m.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: timezone: %q is not an IANA time zone", name, lineOf("timezone"), m.Timezone))
	}
	m.Location = loc
	if m.PeakHours == nil {
		m.PeakHours = []int{17, 21}
	}
	if len(m.PeakHours) != 2 || m.PeakHours[0] < 0 || m.PeakHours[0] > 23 || m.PeakHours[1] < 0 || m.PeakHours[1] > 24 || m.PeakHours[0] == m.PeakHours[1] {
		errs = append(errs, fmt.Errorf("%s:%d: peak_hours: want [from, to], hours 0..24, from != to", name, lineOf("peak_hours")))
	}
	if len(m.Entities) == 0 {
		errs = append(errs, fmt.Errorf("%s: entities: map at least one entity to a device", name))
	}
	ids := make([]string, 0, len(m.Entities))
	for id := range m.Entities {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := m.Entities[id]
		if e.Device == "" {
			e.Device = id
		}
		if err := device.ValidID(e.Device); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: entities.%s.device: %v", name, lineOf(id), id, err))
		}
		if !e.Kind.Valid() {
			errs = append(errs, fmt.Errorf("%s:%d: entities.%s.kind: unknown kind %q (have %v)", name, lineOf(id), id, e.Kind, device.Kinds()))
		}
		if !e.Signal.Valid() {
			errs = append(errs, fmt.Errorf("%s:%d: entities.%s.signal: unknown signal %q", name, lineOf(id), id, e.Signal))
		}
		m.Entities[id] = e
	}
	return errors.Join(errs...)
}

// Reading is the reading an entity's state value v at t stands for, and whether the
// mapping names the entity.
func (m *Mapping) Reading(entity string, v float64, t time.Time) (device.Reading, bool) {
	e, ok := m.Entities[entity]
	if !ok {
		return device.Reading{}, false
	}
	return device.Reading{Device: e.Device, Kind: e.Kind, Signal: e.Signal, Value: v, DeviceTime: t}, true
}

// findKeyLine returns the line of the first mapping key named key (0 if none).
func findKeyLine(n *yaml.Node, key string) int {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	for _, c := range n.Content {
		if l := findKeyLine(c, key); l > 0 {
			return l
		}
	}
	return 0
}

// Problem is one input row that was skipped or adjusted, with its line.
type Problem struct {
	Line   int    `json:"line"`
	Kind   string `json:"kind"` // bad_row, unknown_entity, unavailable, out_of_order, dst_gap
	Detail string `json:"detail"`
}

// Input says what was read of a history and what was wrong with it (the readings
// themselves go to Stream's callback, in time order).
type Input struct {
	Rows     int // data rows (lines) read
	Kept     int // readings kept
	Problems []Problem
	Counts   map[string]int // problems by kind
}

func (in *Input) problem(line int, kind, format string, a ...any) {
	if in.Counts == nil {
		in.Counts = map[string]int{}
	}
	in.Counts[kind]++
	if len(in.Problems) < MaxProblems {
		in.Problems = append(in.Problems, Problem{line, kind, fmt.Sprintf(format, a...)})
	}
}

// MaxProblems bounds the problems listed (all are counted).
const MaxProblems = 1000

// haTimeLayouts are the forms of last_changed accepted: with an offset or Z (HA's
// export), or without one (local time in the mapping's time zone).
var haTimeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

// parseTime reads a time; a local time that does not exist (a DST gap) is an error.
func parseTime(s string, loc *time.Location) (time.Time, string, error) {
	for i, l := range haTimeLayouts {
		if i < 2 {
			if t, err := time.Parse(l, s); err == nil {
				return plausible(t, s)
			}
			continue
		}
		t, err := time.ParseInLocation(l, s, loc)
		if err != nil {
			continue
		}
		// time.Date normalises a time in a DST gap forward: detect the change.
		// Compare the whole local date and time: some zones skipped whole days.
		naive, _ := time.Parse(l, s)
		if t.In(loc).Format("2006-01-02 15:04:05.999999999") != naive.Format("2006-01-02 15:04:05.999999999") {
			return time.Time{}, "dst_gap", fmt.Errorf("local time %s does not exist in %s (a DST gap)", s, loc)
		}
		return plausible(t, s)
	}
	return time.Time{}, "bad_row", fmt.Errorf("time %q is not RFC 3339 (e.g. 2024-03-01T07:30:00Z)", s)
}

// MaxLineBytes bounds one line of an input file.
const MaxLineBytes = 1 << 20

// decimalRE is what a numeric state may look like: no hex, NaN or Inf.
var decimalRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// plausible refuses times before 1990 or after 2200: a clock never set, or garbage.
func plausible(t time.Time, s string) (time.Time, string, error) {
	if t.Year() < 1990 || t.Year() >= 2200 {
		return time.Time{}, "bad_row", fmt.Errorf("time %q is outside 1990..2199", s)
	}
	return t, "", nil
}

// lineLimit fails a read once a line runs past MaxLineBytes, so that one endless
// line (an unterminated quote) cannot take all memory.
type lineLimit struct {
	r   io.Reader
	run int
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.run = 0
		} else if l.run++; l.run > MaxLineBytes {
			return 0, fmt.Errorf("a line longer than %d bytes (an unterminated quote?)", MaxLineBytes)
		}
	}
	return n, err
}

type stamped struct {
	r    device.Reading
	line int
}

// rowReader yields an input's readings one row at a time, in file order, recording
// what was wrong with the others in its Input; io.EOF at the end.
type rowReader interface {
	next() (stamped, error)
}

// haRows reads a Home Assistant history export (entity_id,state,last_changed).
// States: on/off (also open/closed, true/false, home/not_home, detected/clear),
// numbers; unavailable and unknown are skipped and counted. Rows of entities the
// mapping does not name, bad rows and local times in a DST gap are skipped and
// counted with their line; rows older than the previous row of their entity are
// counted as out of order and kept (Stream sorts them into place).
type haRows struct {
	cr     *csv.Reader
	m      *Mapping
	in     *Input
	lastOf map[string]time.Time
	header bool
	col    map[string]int
}

func newHARows(r io.Reader, m *Mapping, in *Input) *haRows {
	cr := csv.NewReader(bufio.NewReader(&lineLimit{r: r}))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &haRows{cr: cr, m: m, in: in, lastOf: map[string]time.Time{}, header: true,
		col: map[string]int{"entity_id": 0, "state": 1, "last_changed": 2}}
}

func (h *haRows) next() (stamped, error) {
	in := h.in
	for {
		rec, err := h.cr.Read()
		if err == io.EOF {
			return stamped{}, io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				in.problem(pe.Line, "bad_row", "%v", pe.Err)
				continue
			}
			return stamped{}, err
		}
		line, _ := h.cr.FieldPos(0)
		if h.header {
			h.header = false
			if len(rec) > 0 && strings.TrimSpace(rec[0]) == "entity_id" {
				for i, c := range rec {
					h.col[strings.TrimSpace(c)] = i
				}
				continue
			}
		}
		in.Rows++
		ei, si, ti := h.col["entity_id"], h.col["state"], h.col["last_changed"]
		if len(rec) <= max(ei, si, ti) {
			in.problem(line, "bad_row", "want entity_id,state,last_changed; got %d fields", len(rec))
			continue
		}
		ent, state, ts := strings.TrimSpace(rec[ei]), strings.TrimSpace(rec[si]), strings.TrimSpace(rec[ti])
		e, ok := h.m.Entities[ent]
		if !ok {
			in.problem(line, "unknown_entity", "entity %q is not in the mapping", ent)
			continue
		}
		t, kind, err := parseTime(ts, h.m.Location)
		if err != nil {
			in.problem(line, kind, "%v", err)
			continue
		}
		var v float64
		switch strings.ToLower(state) {
		case "unavailable", "unknown", "":
			in.problem(line, "unavailable", "entity %s: state %q", ent, state)
			continue
		case "on", "open", "true", "home", "detected":
			v = 1
		case "off", "closed", "false", "not_home", "clear":
			v = 0
		default:
			f, err := strconv.ParseFloat(state, 64)
			if err != nil || !decimalRE.MatchString(state) {
				in.problem(line, "bad_row", "entity %s: state %q is not on/off or a decimal number", ent, state)
				continue
			}
			v = f
		}
		if e.Signal.Binary() && v != 0 && v != 1 {
			in.problem(line, "bad_row", "entity %s: state %q for the on/off signal %s (want on/off, 1/0)", ent, state, e.Signal)
			continue
		}
		if probe := (device.Reading{Device: e.Device, Kind: e.Kind, Signal: e.Signal, Value: v}); probe.Validate() != nil {
			in.problem(line, "bad_row", "entity %s: %v", ent, probe.Validate())
			continue
		}
		if last, ok := h.lastOf[ent]; ok && t.Before(last) {
			in.problem(line, "out_of_order", "entity %s: %s is before its previous row (%s); sorted into place", ent, ts, last.UTC().Format(time.RFC3339))
		} else {
			h.lastOf[ent] = t
		}
		return stamped{device.Reading{Device: e.Device, Kind: e.Kind, Signal: e.Signal, Value: v, DeviceTime: t}, line}, nil
	}
}

// Line is one reading of the native JSONL format (docs/replay.md).
type Line struct {
	Time   string  `json:"time"` // RFC 3339
	Device string  `json:"device"`
	Kind   string  `json:"kind"`
	Signal string  `json:"signal"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	Label  string  `json:"label,omitempty"`
	Aux    int64   `json:"aux,omitempty"`
}

// jsonlRows reads hearth's native reading format, one JSON object per line. Bad
// lines (bad JSON, an invalid reading, a bad time) are skipped and counted; readings
// older than their device and signal's previous one are counted as out of order and
// kept.
type jsonlRows struct {
	sc     *bufio.Scanner
	loc    *time.Location
	in     *Input
	lastOf map[string]time.Time
	line   int
}

func newJSONLRows(r io.Reader, m *Mapping, in *Input) *jsonlRows {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	loc := time.UTC
	if m != nil && m.Location != nil {
		loc = m.Location
	}
	return &jsonlRows{sc: sc, loc: loc, in: in, lastOf: map[string]time.Time{}}
}

func (j *jsonlRows) next() (stamped, error) {
	in := j.in
	for j.sc.Scan() {
		j.line++
		b := bytes.TrimSpace(j.sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		in.Rows++
		var l Line
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			in.problem(j.line, "bad_row", "%v", err)
			continue
		}
		t, kind, err := parseTime(l.Time, j.loc)
		if err != nil {
			in.problem(j.line, kind, "%v", err)
			continue
		}
		rd := device.Reading{Device: l.Device, Kind: device.Kind(l.Kind), Signal: device.Signal(l.Signal), Value: l.Value,
			Unit: l.Unit, Label: l.Label, Aux: l.Aux, DeviceTime: t}
		if err := rd.Validate(); err != nil {
			in.problem(j.line, "bad_row", "%v", err)
			continue
		}
		key := l.Device + "\x00" + l.Signal
		if last, ok := j.lastOf[key]; ok && t.Before(last) {
			in.problem(j.line, "out_of_order", "device %s signal %s: %s is before its previous reading; sorted into place", l.Device, l.Signal, l.Time)
		} else {
			j.lastOf[key] = t
		}
		return stamped{rd, j.line}, nil
	}
	if err := j.sc.Err(); err != nil {
		return stamped{}, fmt.Errorf("line %d: %w", j.line+1, err)
	}
	return stamped{}, io.EOF
}
