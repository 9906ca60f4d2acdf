package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hearth-iot/hearth/device/mqtt/external"
	"github.com/hearth-iot/hearth/device/periph"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/internal/household"
	"github.com/hearth-iot/hearth/internal/supervise"
)

// Status is what GET /v1/status returns.
type Status struct {
	Version   string      `json:"version"`
	InstallID string      `json:"install_id"`
	Uptime    string      `json:"uptime"`
	Ready     bool        `json:"ready"`
	NotReady  string      `json:"not_ready,omitempty"`
	Devices   int         `json:"devices"`
	Tags      int         `json:"tags"`
	Store     store.Stats `json:"store"`
	// Flash is what the store wrote to its disk: today, projected a day, the
	// current group-commit window and store.flash_budget.
	Flash     store.FlashStats `json:"flash"`
	DataClock time.Time        `json:"data_clock,omitzero"`
	Raw       Volume           `json:"raw"`      // readings as devices sent them
	Upstream  Volume           `json:"upstream"` // summaries acknowledged upstream (file: written)
	Outbox    int              `json:"outbox"`   // messages waiting to go upstream
	Sync      SyncStatus       `json:"sync"`     // sync.go
	// External is the external broker's connection and the topics with problems,
	// when one is configured (mqtt.external.url).
	External *external.Status `json:"external,omitempty"`
	// Warnings are things a person should change (a source publishing at QoS 0).
	Warnings []string `json:"warnings,omitempty"`

	HubSensors []periph.SensorStatus `json:"hub_sensors,omitempty"` // hubsensors.go
	// Stages is the health of every supervised stage, by group (sources, pipeline,
	// admin): state, last success, last error, errors and restarts.
	Stages map[string][]supervise.Health `json:"stages,omitempty"`
	// Quarantined is where a damaged store was moved at this start, and Salvage
	// what was recovered from it; MetaDamage a damaged meta page Open did without.
	Quarantined string               `json:"quarantined,omitempty"`
	Salvage     *store.SalvageReport `json:"salvage,omitempty"`
	MetaDamage  string               `json:"meta_damage,omitempty"`
}

// Volume counts items and bytes.
type Volume struct {
	Items int64 `json:"items"`
	Bytes int64 `json:"bytes"`
}

func (a *agent) status() Status {
	s := Status{Version: versionString(), InstallID: a.st.InstallID(), Uptime: time.Since(a.started).Round(time.Second).String(),
		Devices: len(a.st.Devices()), Tags: len(a.eng.Tags()), Sync: a.syncStatus()}
	s.Outbox = s.Sync.QueuedMessages + s.Sync.PendingMessages
	if err := a.ready(); err != nil {
		s.NotReady = err.Error()
	} else {
		s.Ready = true
	}
	s.Store, _ = a.st.Stats()
	s.Flash = a.st.Flash()
	// Cursor names join their parts with NUL (FORMAT.md): shown with "/".
	cursors := make(map[string]uint64, len(s.Store.Cursors))
	for k, v := range s.Store.Cursors {
		cursors[strings.ReplaceAll(k, "\x00", "/")] = v
	}
	s.Store.Cursors = cursors
	_ = a.st.View(func(tx *store.Tx) error { s.DataClock, _ = tagging.DataClock(tx); return nil })
	for _, d := range a.st.Devices() {
		s.Raw.Items += int64(d.Readings)
	}
	if a.br != nil {
		s.Raw.Bytes = int64(a.br.PayloadBytes())
	}
	if a.mq != nil && a.mq.ext != nil {
		es := a.mq.ext.Status()
		s.External = &es
		s.Raw.Bytes += int64(es.StoredBytes)
		s.Warnings = append(s.Warnings, qos0Warnings(es.Topics)...)
	}
	if a.sink != nil {
		s.Upstream.Bytes, s.Upstream.Items = a.sink.Written()
	} else {
		s.Upstream.Bytes, s.Upstream.Items = a.dl.Delivered()
	}
	s.HubSensors = a.hubStatus()
	s.Stages = a.health()
	s.Quarantined, s.Salvage, s.MetaDamage = a.st.Recovered, a.st.Salvage(), a.st.MetaDamage()
	return s
}

// printStages prints one line for the stages that run well and one for each that
// does not: a stall must be impossible to miss.
func printStages(out io.Writer, groups map[string][]supervise.Health) {
	running, total := 0, 0
	var bad []supervise.Health
	for _, g := range []string{"sources", "pipeline", "admin"} {
		for _, h := range groups[g] {
			total++
			if h.State == supervise.StateRunning && h.Errors == 0 {
				running++
				continue
			}
			bad = append(bad, h)
		}
	}
	if total == 0 {
		return
	}
	fmt.Fprintf(out, "stages: %d of %d running without an error\n", running, total)
	for _, h := range bad {
		fmt.Fprintf(out, "  %-16s %-8s errors %d (%d in a row), restarts %d", h.Name, h.State, h.Errors, h.Failures, h.Restarts)
		if h.LastError != "" {
			fmt.Fprintf(out, ", last %s ago: %s", time.Since(h.LastErrorAt).Round(time.Second), h.LastError)
		}
		fmt.Fprintln(out)
	}
}

// qos0Warnings name the mapped topics whose messages arrive at QoS 0: hearth's
// session is persistent, but a broker keeps nothing published at QoS 0 while hearth
// is away unless told to.
func qos0Warnings(ts []external.TopicStatus) []string {
	var out []string
	for _, t := range ts {
		if t.QoS0 == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s publishes at QoS 0 (%d messages): what it sends while hearth is stopped is lost. "+
			"Publish at QoS 1 (Zigbee2MQTT: qos: 1 in device_options or the device's options), or let the broker queue QoS 0 "+
			"for hearth's session (mosquitto: queue_qos0_messages true; Tasmota publishes at QoS 0 only). See docs/mqtt.md.", t.Topic, t.QoS0))
	}
	return out
}

// clientFlags are the flags of the commands that ask the running agent: --addr, or
// --config to take admin.listen from the agent's configuration (as `hearth device`
// does), and --json. parse parses args and returns the address to ask.
func clientFlags(name string) (fs *flag.FlagSet, asJSON *bool, parse func(args []string) (string, error)) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("addr", "", "the running agent's admin.listen address (default: admin.listen of --config, else "+config.Default().Admin.Listen+")")
	cfgPath := fs.String("config", "", "the agent's configuration file, for its admin.listen")
	asJSON = fs.Bool("json", false, "print the API's JSON")
	return fs, asJSON, func(args []string) (string, error) {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		a, _, err := agentOf(*addr, *cfgPath)
		return a, err
	}
}

// agentOf resolves the commands' --addr and --config: the configuration (the file, or
// the defaults without one) and the running agent's admin address (addr if given,
// else the configuration's admin.listen).
func agentOf(addr, cfgPath string) (string, config.Config, error) {
	cfg := config.Default()
	if cfgPath != "" {
		var err error
		if cfg, err = config.Load(cfgPath); err != nil {
			return "", cfg, err
		}
	}
	if addr == "" {
		addr = cfg.Admin.Listen
	}
	return addr, cfg, nil
}

func get(ctx context.Context, addr, path string, v any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach hearth at %s (is `hearth run` running? admin.listen sets the address): %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s (%s %s)", apiError(body), path, resp.Status)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return body, fmt.Errorf("%s: %w", path, err)
		}
	}
	return body, nil
}

// apiError is the message of an admin API error: the "error" of its JSON body, else
// the body as text.
func apiError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

func cmdStatus(ctx context.Context, args []string, out io.Writer) error {
	_, asJSON, parse := clientFlags("status")
	addr, err := parse(args)
	if err != nil {
		return err
	}
	var s Status
	body, err := get(ctx, addr, "/v1/status", &s)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = out.Write(body)
		return err
	}
	ready := "ready"
	if !s.Ready {
		ready = "NOT READY: " + s.NotReady
	}
	fmt.Fprintf(out, "%s · %s · up %s\n", s.Version, ready, s.Uptime)
	fmt.Fprintf(out, "install %s · %d devices · %d tags\n", s.InstallID, s.Devices, s.Tags)
	fmt.Fprintf(out, "store: %d events (seq %d..%d), %s used of %s quota, file %s\n", s.Store.Events, s.Store.FirstSeq, s.Store.LastSeq,
		humanBytes(s.Store.UsedBytes), humanBytes(s.Store.QuotaBytes), humanBytes(s.Store.FileBytes))
	budget := "off"
	if s.Flash.BudgetBytesPerDay > 0 {
		budget = humanBytes(s.Flash.BudgetBytesPerDay) + "/day"
	}
	fmt.Fprintf(out, "flash: %s written today, projected %s/day (budget %s), commit window %s\n",
		humanBytes(s.Flash.WrittenToday), humanBytes(s.Flash.ProjectedPerDay), budget, s.Flash.Window)
	names := make([]string, 0, len(s.Store.Cursors))
	for k := range s.Store.Cursors {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(out, "  cursor %-24s %d\n", k, s.Store.Cursors[k])
	}
	if !s.DataClock.IsZero() {
		fmt.Fprintf(out, "data clock: %s\n", s.DataClock.Format(time.RFC3339))
	}
	fmt.Fprintf(out, "raw readings: %d (%s as received) · upstream: %d summaries (%s) · outbox: %d waiting\n",
		s.Raw.Items, humanBytes(s.Raw.Bytes), s.Upstream.Items, humanBytes(s.Upstream.Bytes), s.Outbox)
	var b strings.Builder
	printSync(&b, s.Sync)
	if _, err := io.WriteString(out, b.String()); err != nil {
		return err
	}
	if s.External != nil {
		printExternal(out, s.External)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(out, "WARNING: %s\n", w)
	}
	printHubStatus(out, s.HubSensors)
	printStages(out, s.Stages)
	printDamage(out, s)
	return nil
}

// printExternal shows the external broker's connection, its last error and the
// topics with problems.
func printExternal(out io.Writer, e *external.Status) {
	fmt.Fprintf(out, "external broker %s: %s since %s", e.URL, strings.ToUpper(e.State), e.Since.Local().Format(time.DateTime))
	if e.FailedConnects > 0 {
		fmt.Fprintf(out, " · %d failed connection attempts", e.FailedConnects)
	}
	if e.LastMessageAt.IsZero() {
		fmt.Fprint(out, " · no message yet\n")
	} else {
		fmt.Fprintf(out, " · %d messages, the last at %s\n", e.Messages, e.LastMessageAt.Local().Format(time.DateTime))
	}
	if e.LastError != "" {
		fmt.Fprintf(out, "  last error (%s): %s\n", e.LastErrorAt.Local().Format(time.DateTime), e.LastError)
	}
	var problems []external.TopicStatus
	for _, t := range e.Topics {
		if len(t.Problems) > 0 {
			problems = append(problems, t)
		}
	}
	if len(problems) == 0 {
		return
	}
	fmt.Fprintln(out, "  messages not (wholly) stored, by topic:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, t := range problems {
		reasons := make([]string, 0, len(t.Problems))
		for r, n := range t.Problems {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", t.Topic, strings.Join(reasons, ", "), t.LastError)
	}
	tw.Flush()
}

// printDamage tells what Open found wrong with the database at this start, if
// anything: a damaged file moved aside, and what was salvaged from it, bucket by
// bucket; or a damaged meta page.
func printDamage(out io.Writer, s Status) {
	if s.MetaDamage != "" {
		fmt.Fprintf(out, "DAMAGED META PAGE at start: %s (the other one was used; its newest commit may be lost)\n", s.MetaDamage)
	}
	if s.Quarantined == "" {
		return
	}
	fmt.Fprintf(out, "DAMAGED STORE at start: moved aside to %s\n", s.Quarantined)
	r := s.Salvage
	if r == nil {
		return
	}
	if r.Error != "" {
		fmt.Fprintf(out, "  salvage: %s\n", r.Error)
	}
	identity := "kept (pseudonyms upstream unchanged)"
	if !r.IdentityKept {
		identity = "LOST: new install id and pseudonyms"
	}
	fmt.Fprintf(out, "  salvaged from transaction %d; identity %s", r.Txid, identity)
	if len(r.FromKeep) > 0 {
		fmt.Fprintf(out, "; from the keep file: %s", strings.Join(r.FromKeep, ", "))
	}
	fmt.Fprintln(out)
	names := make([]string, 0, len(r.Buckets))
	for k := range r.Buckets {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  BUCKET\tRECOVERED\tLOST\tLOST PAGES")
	for _, k := range names {
		b := r.Buckets[k]
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\n", k, b.Recovered, b.Lost, b.LostPages)
	}
	tw.Flush()
}

func cmdTags(ctx context.Context, args []string, out io.Writer) error {
	fs, asJSON, parse := clientFlags("tags")
	explain := fs.String("explain", "", "show why tag NAME is what it is")
	addr, err := parse(args)
	if err != nil {
		return err
	}
	if *explain != "" {
		var t tagging.Tag
		body, err := get(ctx, addr, "/v1/tags/"+*explain, &t)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err = out.Write(body)
			return err
		}
		explainTag(out, t)
		return nil
	}
	var tags []tagging.Tag
	body, err := get(ctx, addr, "/v1/tags", &tags)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = out.Write(body)
		return err
	}
	printTags(out, tags)
	return nil
}

func printTags(out io.Writer, tags []tagging.Tag) {
	if len(tags) == 0 {
		fmt.Fprintln(out, "  no tags yet: hearth needs data from appliances first")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TAG\tSCORE\tCONFIDENCE\tACTIVE\tSTATUS\tDAYS\tEVIDENCE")
	for _, t := range tags {
		active := "no"
		if t.Active {
			active = "YES"
		}
		fmt.Fprintf(tw, "  %s\t%.2f\t%.2f\t%s\t%s\t%d/%d\t%s\n", t.Name, t.Score, t.Confidence, active, t.Status, t.Days, t.MinDays, evidence(t.Evidence))
	}
	tw.Flush()
}

func evidence(ev map[string]float64) string {
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, trimFloat(ev[k]))
	}
	return strings.Join(parts, " ")
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func explainTag(out io.Writer, t tagging.Tag) {
	fmt.Fprintf(out, "%s — %s\n", t.Name, t.Description)
	fmt.Fprintf(out, "  score %.3f (confidence %.2f), %s, status %s (consent category %s)\n", t.Score, t.Confidence, map[bool]string{true: "ACTIVE", false: "not active"}[t.Active], t.Status, t.Consent)
	if t.Error != "" {
		fmt.Fprintf(out, "  error: %s\n", t.Error)
	}
	fmt.Fprintf(out, "  window %s .. %s (%.0f days); %d days with data, %d needed to activate\n", t.From, t.To, t.WindowDays, t.Days, t.MinDays)
	if !t.FirstSeen.IsZero() {
		fmt.Fprintf(out, "  first seen active %s, last %s, expires %s\n", t.FirstSeen.Format(time.RFC3339), t.LastSeen.Format(time.RFC3339), t.Expires.Format(time.RFC3339))
	}
	fmt.Fprintln(out, "  evidence:")
	keys := make([]string, 0, len(t.Evidence))
	for k := range t.Evidence {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "    %-20s %s\n", k, trimFloat(t.Evidence[k]))
	}
}

func humanBytes(n int64) string { return household.HumanBytes(n) }

// reporter prints the terminal report: a line of counts every report.interval, the
// tags that changed since they were last printed under it, and the whole table at
// the first report and whenever hearth gets SIGUSR1 (kill -USR1 <pid>).
type reporter struct {
	a       *agent
	printed map[string]tagging.Tag // each tag as it was last printed
	usr1    chan os.Signal
}

// newReporter returns the report stage: step prints a report; stop ends its signal
// notification.
func (a *agent) newReporter() *reporter {
	r := &reporter{a: a, usr1: make(chan os.Signal, 1)}
	notifyUSR1(r.usr1)
	return r
}

func (r *reporter) step(context.Context) error { r.report(); return nil }
func (r *reporter) stop()                      { stopNotify(r.usr1) }

// reportChanged says whether a tag moved enough since it was printed to print again.
func reportChanged(was, now tagging.Tag) bool {
	return was.Active != now.Active || was.Status != now.Status || math.Abs(was.Score-now.Score) >= 0.05 ||
		math.Abs(was.Confidence-now.Confidence) >= 0.1
}

func (r *reporter) report() {
	a := r.a
	full := r.printed == nil
	select {
	case <-r.usr1:
		full = true
	default:
	}
	s := a.status()
	var b strings.Builder
	fmt.Fprintf(&b, "── hearth · up %s · %d devices · %d readings stored", s.Uptime, s.Devices, s.Raw.Items)
	if !s.DataClock.IsZero() {
		fmt.Fprintf(&b, " · data clock %s", s.DataClock.In(a.cfg.Location()).Format("Mon 2006-01-02 15:04"))
	}
	if sc := a.simClock(); !sc.IsZero() && !sc.Equal(s.DataClock) {
		fmt.Fprintf(&b, " · simulated household at %s", sc.In(a.cfg.Location()).Format("Mon 2006-01-02 15:04"))
	}
	raw := s.Raw.Bytes
	pct := 0.0
	if raw > 0 {
		pct = 100 * float64(s.Upstream.Bytes) / float64(raw)
	}
	fmt.Fprintf(&b, " · upstream %d summaries, %s (%.2f%% of %s raw), %d waiting\n",
		s.Upstream.Items, humanBytes(s.Upstream.Bytes), pct, humanBytes(raw), s.Outbox)
	if s.Sync.Paused != "" {
		fmt.Fprintf(&b, "  UPSTREAM DELIVERY PAUSED: %s — fix the key in sync.%s; nothing is lost\n", s.Sync.Paused, s.Sync.Transport)
	}
	tags := a.eng.Tags()
	if full {
		printTags(&b, tags)
		b.WriteString("  (the whole table again: kill -USR1 " + strconv.Itoa(os.Getpid()) + ")\n")
		r.printed = make(map[string]tagging.Tag, len(tags))
		for _, t := range tags {
			r.printed[t.Name] = t
		}
	} else {
		var changed []tagging.Tag
		for _, t := range tags {
			if was, ok := r.printed[t.Name]; !ok || reportChanged(was, t) {
				changed = append(changed, t)
				r.printed[t.Name] = t
			}
		}
		if len(changed) > 0 {
			printTags(&b, changed)
		}
	}
	_, _ = io.WriteString(a.out, b.String())
}
