package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // the household's IANA zone must resolve on a hub without zoneinfo

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// ReplayReport is what `hearth replay --json` prints: one JSON object.
type ReplayReport struct {
	From     string                 `json:"from"`
	To       string                 `json:"to"`
	Days     int                    `json:"days"`
	Devices  []replay.DeviceSummary `json:"devices"`
	Tags     []ReplayTag            `json:"tags"`
	Input    ReplayInput            `json:"input"`
	Timezone string                 `json:"timezone"`
}

// ReplayTag is one tag of the report.
type ReplayTag struct {
	Name       string             `json:"name"`
	Score      float64            `json:"score"`
	Confidence float64            `json:"confidence"`
	Active     bool               `json:"active"`
	Status     string             `json:"status"`
	Error      string             `json:"error,omitempty"`
	Evidence   map[string]float64 `json:"evidence"`
}

// ReplayInput says what was read and what was wrong with it.
type ReplayInput struct {
	File     string           `json:"file"`
	Format   string           `json:"format"`
	Rows     int              `json:"rows"`
	Readings int              `json:"readings"`
	Problems map[string]int   `json:"problems"`
	Lines    []replay.Problem `json:"problem_lines"`
}

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "replay mapping (YAML: timezone, entities → kind and signal; docs/replay.md)")
	input := fs.String("input", "", "history file to replay")
	format := fs.String("format", "ha-csv", "input format: ha-csv or jsonl")
	asJSON := fs.Bool("json", false, "print the report as one JSON object (nothing else on stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" || *input == "" {
		return fmt.Errorf("%w: replay needs --config FILE and --input FILE", errUsage)
	}
	if *format != "ha-csv" && *format != "jsonl" {
		return fmt.Errorf("%w: --format %q: want ha-csv or jsonl", errUsage, *format)
	}
	m, err := replay.LoadMapping(*cfgPath)
	if err != nil {
		return err
	}
	src, name := configs.Tags, "tags.yaml (built in)"
	if m.RulesFile != "" {
		if src, err = os.ReadFile(m.RulesFile); err != nil {
			return fmt.Errorf("rules_file: %w", err)
		}
		name = m.RulesFile
	}
	rules, err := tagging.ParseRules(src, name)
	if err != nil {
		return err
	}
	f, err := os.Open(*input)
	if err != nil {
		return err
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	tmp, err := os.MkdirTemp("", "hearth-replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := replay.Open(tmp, replay.Options{Location: m.Location, Rules: rules, PeakHours: [2]int{m.PeakHours[0], m.PeakHours[1]},
		Consent: func(c string) bool {
			return c == tagging.ConsentUsage || (c == tagging.ConsentSensitive && m.Sensitive)
		}})
	if err != nil {
		return err
	}
	defer p.Close()
	// The input is streamed: read (and sorted in bounded runs when it is long), then
	// replayed in time order; on a terminal each phase draws its progress.
	bar := newProgress(stderr, size, progressMinBytes, "bytes read")
	counted := &countingReader{r: f, seen: func(n int64) { bar.set(n) }}
	added := 0
	in, err := replay.Stream(counted, *format, m, &replay.StreamOptions{TempDir: tmp, Read: func(in *replay.Input) {
		bar.done()
		bar = newProgress(stderr, int64(in.Kept), progressMinReadings, "readings replayed")
	}}, func(r device.Reading) error {
		added++
		bar.set(int64(added))
		return p.Add(r)
	})
	bar.done()
	if err != nil {
		return fmt.Errorf("%s: %w", *input, err)
	}
	if in.Kept == 0 {
		return fmt.Errorf("%s: no usable readings (%d rows, problems %v)", *input, in.Rows, in.Counts)
	}
	tags, err := p.Finish()
	if err != nil {
		return err
	}
	devs, err := p.Devices()
	if err != nil {
		return err
	}
	first, last, _ := p.Span()
	rep := ReplayReport{From: first.In(m.Location).Format(time.RFC3339), To: last.In(m.Location).Format(time.RFC3339),
		Days: calendarDays(first, last, m.Location), Devices: devs, Timezone: m.Location.String(),
		Input: ReplayInput{File: *input, Format: *format, Rows: in.Rows, Readings: in.Kept, Problems: in.Counts, Lines: in.Problems}}
	if rep.Input.Lines == nil {
		rep.Input.Lines = []replay.Problem{}
	}
	for _, t := range tags {
		rep.Tags = append(rep.Tags, ReplayTag{Name: t.Name, Score: t.Score, Confidence: t.Confidence, Active: t.Active, Status: t.Status, Error: t.Error, Evidence: t.Evidence})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(rep)
	}
	printReplay(stdout, &rep)
	return nil
}

func calendarDays(first, last time.Time, loc *time.Location) int {
	a, b := first.In(loc), last.In(loc)
	da := time.Date(a.Year(), a.Month(), a.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(b.Year(), b.Month(), b.Day(), 12, 0, 0, 0, time.UTC)
	return int(db.Sub(da).Hours()/24) + 1
}

func printReplay(out io.Writer, r *ReplayReport) {
	fmt.Fprintf(out, "replayed %s (%s): %d rows, %d readings, %s .. %s (%d days, %s)\n", r.Input.File, r.Input.Format,
		r.Input.Rows, r.Input.Readings, r.From, r.To, r.Days, r.Timezone)
	if len(r.Input.Problems) > 0 {
		fmt.Fprintf(out, "input problems: %v\n", r.Input.Problems)
		for i, p := range r.Input.Lines {
			if i == 20 {
				fmt.Fprintf(out, "  ... %d more (--json lists up to %d)\n", len(r.Input.Lines)-20, replay.MaxProblems)
				break
			}
			fmt.Fprintf(out, "  line %d: %s: %s\n", p.Line, p.Kind, p.Detail)
		}
	}
	fmt.Fprintln(out, "devices:")
	for _, d := range r.Devices {
		fmt.Fprintf(out, "  %-22s %-16s %6d activations  by hour %v\n", d.ID, d.Kind, d.Activations, d.Hourly)
	}
	fmt.Fprintln(out, "tags:")
	for _, t := range r.Tags {
		act := ""
		if t.Active {
			act = "ACTIVE"
		}
		var ev []string
		for k, v := range t.Evidence {
			ev = append(ev, fmt.Sprintf("%s=%s", k, trimFloat(v)))
		}
		fmt.Fprintf(out, "  %-40s %.3f (confidence %.2f) %-6s %-9s %s %s\n", t.Name, t.Score, t.Confidence, act, t.Status, strings.Join(sorted(ev), " "), t.Error)
	}
}

func sorted(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// Progress is drawn for inputs of at least this many bytes (reading) and readings
// (replaying).
const (
	progressMinBytes    = 1 << 20
	progressMinReadings = 10000
)

// progress draws a bar on stderr when it is a terminal, for long inputs only.
type progress struct {
	w        io.Writer
	total    int64
	what     string
	on       bool
	lastDraw int64
}

func newProgress(w io.Writer, total, minTotal int64, what string) *progress {
	p := &progress{w: w, total: total, what: what}
	if f, ok := w.(*os.File); ok && total >= minTotal {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true // a terminal, not a pipe or file
		}
	}
	return p
}

func (p *progress) set(n int64) {
	if !p.on || (n-p.lastDraw < p.total/200 && n != p.total) {
		return
	}
	p.lastDraw = n
	const width = 40
	fill := int(min(width*n/max(p.total, 1), width))
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d %s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), 100*n/max(p.total, 1), n, p.total, p.what)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
		p.on = false
	}
}

// countingReader reports the bytes read so far.
type countingReader struct {
	r    io.Reader
	n    int64
	seen func(int64)
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.seen(c.n)
	return n, err
}
