// Package household is the household's own page, served by the admin listener at
// "/": what hearth learned about the home (the tags, in words, with their scores and
// evidence), what left the home and when (the audit), the consent switches and the
// erase buttons. Everything is rendered on the hub — the charts as server-side SVG —
// and embedded in the binary (go:embed): no build step, nothing fetched from
// elsewhere. A small script (assets/app.js) keeps the admin token in the browser's
// session storage (never a cookie, never a URL) and sends it as a bearer header with
// each change; a cross-site page can neither read it nor send it (docs/privacy.md,
// "The page").
//
// The package renders what it is given (Data); cmd/hearth assembles it.
package household

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Data is what the page shows.
type Data struct {
	Generated       time.Time
	Household       string // the household's pseudonym upstream
	Tags            []Tag
	Devices         []Device
	TagHistory      []Series // one per tag, each with Days points
	Days            []string // the dates of TagHistory's points and the heatmaps' window
	Traffic         []Traffic
	Audit           []AuditRow
	Consent         []Consent
	SimulatedExempt bool // the simulated household's summaries leave in undecided categories
	CrossBorder     bool // the transport is cross-border
	Transport       string
}

// Tag is one learned habit.
type Tag struct {
	Name        string
	Description string // the rule's words
	Score       float64
	Confidence  float64
	Active      bool
	Status      string
	Category    string // consent category of what would be sent: tags or sensitive
	Evidence    []Evidence
}

// Evidence is one number a tag rests on.
type Evidence struct {
	Name  string
	Value float64
}

// Device is one appliance and its week-by-hour use.
type Device struct {
	ID       string
	Kind     string
	Readings uint64
	LastSeen time.Time
	// Week counts uses (activations, cycles) by local weekday (Sunday first) and hour.
	Week [7][24]int
}

// Series is one tag's score at the end of each day of Data.Days.
type Series struct {
	Tag    string
	Points []float64
}

// Traffic is one day's bytes upstream against the raw bytes kept at home.
type Traffic struct {
	Date string
	Sent int64
	Raw  int64
}

// AuditRow is one audit entry in words.
type AuditRow struct {
	Seq  uint64
	At   time.Time
	Kind string
	Text string
}

// Consent is one consent switch.
type Consent struct {
	Category string
	Granted  bool
	Source   string // config or recorded
	By, Via  string
	At       time.Time
}

// explain says what each category lets leave.
var explain = map[string]string{
	"usage":        "a daily summary of each appliance (how often, how long — never the readings) and the hub's health",
	"tags":         "the habits hearth learned (the tags below), when they change",
	"sensitive":    "habits that reveal whereabouts, such as being away from home (needs tags too)",
	"cross_border": "sending through a receiver outside your region",
}

// Handler serves the page at "/" and its assets under "/static/".
func Handler(data func() (Data, error)) http.Handler {
	tpl := template.Must(template.New("page.html").Funcs(template.FuncMap{
		"pct":      func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) },
		"words":    func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "_", " "), ".", " · ") },
		"explain":  func(c string) string { return explain[c] },
		"when":     func(t time.Time) string { return t.Local().Format("2 Jan 15:04") },
		"num":      func(v float64) string { return trimFloat(v) },
		"heatmap":  Heatmap,
		"scores":   func(d Data) template.HTML { return ScoreChart(d.TagHistory, d.Days) },
		"traffic":  func(d Data) template.HTML { return TrafficChart(d.Traffic) },
		"bytes":    HumanBytes,
		"hasAudit": func(d Data) bool { return len(d.Audit) > 0 },
	}).ParseFS(assets, "assets/page.html"))
	static, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, "/static/") {
			files.ServeHTTP(w, r)
			return
		}
		d, err := data()
		if err != nil {
			http.Error(w, "hearth: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// Rendered whole before anything is written: a template error is a clean 500,
		// never half a page followed by a second header.
		var page bytes.Buffer
		if err := tpl.Execute(&page, d); err != nil {
			http.Error(w, "hearth: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = page.WriteTo(w)
	})
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e12 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// HumanBytes writes n bytes as a person reads them: "512 B", "3.4 KB", "1.2 MB"
// (the page and `hearth status` alike).
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
