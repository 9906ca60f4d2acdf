// Package config reads hearth.yaml: strict decoding that reports every problem of a
// file, not the first (an unknown key, a wrong type, a key given twice: decode.go),
// defaults for everything left out, one validation across fields, and one rule for
// every path (paths.go). Each problem is an Error with its file, line and dotted key;
// a File holds them with the decoded Config and the warnings, and takes more from the
// checks cmd/hearth makes against the machine (File.Errorf), so that `hearth config
// check` and `hearth run` report the same problems the same way.
//
// configs/hearth.yaml documents every key, next to it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // a hub may have no zoneinfo: timezones come with the binary

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/procs"
	"github.com/hearth-iot/hearth/internal/supervise"
)

// Duration is a time.Duration written as "90s", "5m", "36h" or "28d".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	bad := fmt.Errorf("%s is not a duration (e.g. 30s, 5m, 28d)", describe(n))
	if n.Kind != yaml.ScalarNode {
		return bad
	}
	s := strings.TrimSpace(n.Value)
	if v, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.Abs(f) > float64(math.MaxInt64)/float64(24*time.Hour) {
			return bad
		}
		*d = Duration(time.Duration(f * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return bad
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML writes the duration as Go writes it.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Config is hearth.yaml. Field comments are in configs/hearth.yaml.
type Config struct {
	DataDir         string       `yaml:"data_dir"`
	Timezone        string       `yaml:"timezone"`
	ShutdownTimeout Duration     `yaml:"shutdown_timeout"`
	Log             Log          `yaml:"log"`
	Store           Store        `yaml:"store"`
	Ingest          Ingest       `yaml:"ingest"`
	Broker          Broker       `yaml:"broker"`
	Admin           Admin        `yaml:"admin"`
	Rollup          Rollup       `yaml:"rollup"`
	Tagging         Tagging      `yaml:"tagging"`
	Sync            Sync         `yaml:"sync"`
	Consent         Consent      `yaml:"consent"`
	Privacy         Privacy      `yaml:"privacy"`
	Sim             Sim          `yaml:"sim"`
	Report          Report       `yaml:"report"`
	Stages          Stages       `yaml:"stages"`
	CPU             CPU          `yaml:"cpu"`
	Serial          []SerialPort `yaml:"serial"`
	MQTT            MQTT         `yaml:"mqtt"`
	HubSensors      []HubSensor  `yaml:"hub_sensors"`
}

type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

type Store struct {
	File       string   `yaml:"file"`
	QuotaBytes int64    `yaml:"quota_bytes"`
	MaxAge     Duration `yaml:"max_age"`
	MaxBatch   int      `yaml:"max_batch"`
	MaxDelay   Duration `yaml:"max_delay"`
	CommitPace Duration `yaml:"commit_pace"`
	QueueLen   int      `yaml:"queue_len"`
	// FlashBudget: bytes a day the store may write to its disk (0: off).
	FlashBudget int64 `yaml:"flash_budget"`
}

type Ingest struct {
	MaxClockSkew Duration `yaml:"max_clock_skew"`
}

type Broker struct {
	Enabled          bool     `yaml:"enabled"`
	Listen           string   `yaml:"listen"`
	TLSListen        string   `yaml:"tls_listen"`
	TLSCertFile      string   `yaml:"tls_cert_file"`
	TLSKeyFile       string   `yaml:"tls_key_file"`
	MaxPacketBytes   int      `yaml:"max_packet_bytes"`
	MaxClients       int      `yaml:"max_clients"`
	MaxInflight      int      `yaml:"max_inflight"`
	MaxPendingWrites int      `yaml:"max_pending_writes"`
	SessionExpiry    Duration `yaml:"session_expiry"`
	ConnectTimeout   Duration `yaml:"connect_timeout"`
	MaxConnecting    int      `yaml:"max_connecting"`
	PublishRate      float64  `yaml:"publish_rate"`
	PublishBurst     int      `yaml:"publish_burst"`
	LockoutFailures  int      `yaml:"lockout_failures"`
	LockoutWindow    Duration `yaml:"lockout_window"`

	MaxConnectingPerSource int `yaml:"max_connecting_per_source"`
	MaxTopicLevels         int `yaml:"max_topic_levels"`
	MaxTopicBytes          int `yaml:"max_topic_bytes"`
	MaxTopicAliases        int `yaml:"max_topic_aliases"`
	MaxSubscriptions       int `yaml:"max_subscriptions"`
}

type Admin struct {
	Listen    string `yaml:"listen"`
	TokenFile string `yaml:"token_file"` // "": admin.token in data_dir (see AdminTokenFile)
	Pprof     bool   `yaml:"pprof"`
	// ReadingsMax bounds N of GET /v1/devices/{id}/readings?last=N.
	ReadingsMax int `yaml:"readings_max"`
	// ReadingsScan bounds the events one such request examines.
	ReadingsScan int `yaml:"readings_scan"`
}

// DefaultTokenFile is the admin token's file name in data_dir when admin.token_file
// is empty.
const DefaultTokenFile = "admin.token"

// AdminTokenFile is the file holding the admin API's bearer token: admin.token_file,
// or admin.token in data_dir when that is empty.
func (c *Config) AdminTokenFile() string {
	if c.Admin.TokenFile != "" {
		return c.Admin.TokenFile
	}
	return filepath.Join(c.DataDir, DefaultTokenFile)
}

type Rollup struct {
	Interval Duration `yaml:"interval"`
}

type Tagging struct {
	RulesFile string   `yaml:"rules_file"`
	Interval  Duration `yaml:"interval"`   // a pass evaluates only when the store, rules or consent changed (tagging.Engine.Refresh)
	PeakHours []int    `yaml:"peak_hours"` // [from, to) local hours of energy.peak_hour_use
}

// Consent is the household's initial consent (sync/privacy): once the household
// records a decision (`hearth consent`, the admin API, the page) the store's record
// wins over these keys.
type Consent struct {
	Usage       bool `yaml:"usage"`
	Tags        bool `yaml:"tags"`
	Sensitive   bool `yaml:"sensitive"`
	CrossBorder bool `yaml:"cross_border"`
}

type Sim struct {
	Enabled bool     `yaml:"enabled"`
	Persona string   `yaml:"persona"`
	Seed    int64    `yaml:"seed"`
	Speed   float64  `yaml:"speed"`
	History Duration `yaml:"history"`
	Kinds   []string `yaml:"kinds"`
}

type Report struct {
	Interval Duration `yaml:"interval"`
}

// CPU is how many CPUs run the agent's Go code at once (internal/procs).
type CPU struct {
	BurstRate int `yaml:"burst_rate"`
}

// Stages tunes the supervision of the agent's stages (internal/supervise).
type Stages struct {
	RestartMin   Duration `yaml:"restart_min"`
	RestartMax   Duration `yaml:"restart_max"`
	UnreadyAfter int      `yaml:"unready_after"`
}

// Default returns the configuration hearth runs with when no file is given: the
// embedded demo (broker, store under ./data, a simulated household, local file sink).
func Default() Config {
	// Each component's defaults are its own (DefaultOptions): the configuration holds
	// no second copy of them, only the keys that are the agent's.
	bo, io, to := broker.DefaultOptions(), ingest.DefaultOptions(), tagging.DefaultOptions()
	sv := supervise.DefaultOptions()
	st := store.DefaultOptions()
	return Config{
		DataDir:         "./data",
		Timezone:        "",
		ShutdownTimeout: Duration(10 * time.Second),
		Log:             Log{Format: "text", Level: "info"},
		Store: Store{File: "hearth.db", QuotaBytes: st.QuotaBytes, MaxAge: Duration(st.MaxAge),
			MaxBatch: st.MaxBatch, MaxDelay: Duration(st.MaxDelay), CommitPace: Duration(st.CommitPace), QueueLen: st.QueueLen,
			FlashBudget: st.FlashBudget},
		Ingest: Ingest{MaxClockSkew: Duration(io.MaxSkew)},
		Broker: Broker{Enabled: true, Listen: "127.0.0.1:1883", MaxPacketBytes: bo.MaxPacketBytes, MaxClients: bo.MaxClients,
			MaxInflight: bo.MaxInflight, MaxPendingWrites: bo.MaxPendingWrites, SessionExpiry: Duration(bo.SessionExpiry),
			ConnectTimeout: Duration(bo.ConnectTimeout), MaxConnecting: bo.MaxConnecting, PublishRate: bo.PublishRate,
			PublishBurst: bo.PublishBurst, LockoutFailures: bo.LockoutFailures, LockoutWindow: Duration(bo.LockoutWindow),
			MaxConnectingPerSource: bo.MaxConnectingPerSource, MaxTopicLevels: bo.MaxTopicLevels, MaxTopicBytes: bo.MaxTopicBytes,
			MaxTopicAliases: bo.MaxTopicAliases, MaxSubscriptions: bo.MaxSubscriptions},
		Admin:   Admin{Listen: "127.0.0.1:9880", ReadingsMax: admin.DefaultReadingsMax, ReadingsScan: 1000000},
		Rollup:  Rollup{Interval: Duration(2 * time.Second)},
		Tagging: Tagging{Interval: Duration(5 * time.Second), PeakHours: []int{to.PeakHours[0], to.PeakHours[1]}},
		Sync:    DefaultSync(),
		Privacy: DefaultPrivacy(),
		Sim: Sim{Enabled: true, Persona: "default", Seed: 1, Speed: 10080, History: Duration(28 * 24 * time.Hour),
			Kinds: []string{}},
		Report: Report{Interval: Duration(10 * time.Second)},
		Stages: Stages{RestartMin: Duration(sv.RestartMin), RestartMax: Duration(sv.RestartMax), UnreadyAfter: 3},
		CPU:    CPU{BurstRate: procs.DefaultOptions().BurstRate},
		Serial: []SerialPort{},
		MQTT:   DefaultMQTT(),

		HubSensors: []HubSensor{},
	}
}

// Error is one problem in a configuration file: an error, or a warning (something
// that is allowed but very likely not what was meant).
type Error struct {
	File    string // "" for the built-in defaults
	Line    int    // 0 when the problem has no single line
	Key     string // dotted path, e.g. store.quota_bytes or serial[1].baud
	Msg     string
	Warning bool
}

// Error formats e as "file:line: key: message" (warnings: "file:line: warning: key: message").
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, one per line.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// File is one configuration as read: the Config decoded over the defaults, every
// problem found in it (each with its key and line), and its warnings. Checks beyond
// the file itself (cmd/hearth: does the rules file parse, is data_dir writable) add
// theirs with Errorf, at the key's line, so that `hearth config check` and `hearth
// run` report the same problems the same way.
type File struct {
	Name     string // the file, as given; "" for the built-in defaults
	Config   Config
	Errors   Errors
	Warnings Errors

	lines  map[string]int  // key → line of the key (list entries: of the entry)
	failed map[string]bool // keys whose value could not be decoded
}

// Read reads, decodes and validates the file at path, and resolves the relative paths
// in it against the file's directory (see paths.go). The error is for a file that
// cannot be read; every problem in its content is in File.Errors.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f := ParseFile(b, path)
	f.Config.resolvePaths(filepath.Dir(path))
	return f, nil
}

// Load reads the file at path as Read does; any problem in it is an Errors.
func Load(path string) (Config, error) {
	f, err := Read(path)
	if err != nil {
		return Config{}, err
	}
	if err := f.Err(); err != nil {
		return Config{}, err
	}
	return f.Config, nil
}

// Parse decodes src (named name in errors) over the defaults and validates it. Its
// relative paths are left as written (Read resolves them).
func Parse(src []byte, name string) (Config, error) {
	f := ParseFile(src, name)
	if err := f.Err(); err != nil {
		return Config{}, err
	}
	return f.Config, nil
}

// DefaultFile is the configuration hearth runs with when no file is given: Default(),
// no file name, relative paths relative to the working directory.
func DefaultFile() *File {
	f := &File{Config: Default(), lines: map[string]int{}, failed: map[string]bool{}}
	f.Config.validate(f.Errorf)
	return f
}

// ParseFile decodes src (named name in problems) over the defaults and validates it:
// every problem is in the returned File's Errors, however many there are.
func ParseFile(src []byte, name string) *File {
	f := &File{Name: name, Config: Default(), lines: map[string]int{}, failed: map[string]bool{}}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		f.Errors = append(f.Errors, yamlError(name, err))
		return f
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		f.Errors = append(f.Errors, Error{File: name, Line: more.Line, Msg: "a second YAML document (---): hearth reads one"})
	}
	if len(root.Content) > 0 {
		d := &decoder{f: f, failed: f.failed}
		d.decode(root.Content[0], reflect.ValueOf(&f.Config).Elem(), "")
	}
	f.Config.validate(f.Errorf)
	f.Config.checkMappings(f.Errorf, f.Warnf)
	f.Errors.Sort()
	f.Warnings.Sort()
	return f
}

func yamlError(name string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: name, Line: line, Msg: m[2]}
	}
	return Error{File: name, Msg: msg}
}

// Line returns the line of key in the file: of the key itself, else of the nearest
// enclosing key that is written (broker for a missing broker.tls_cert_file); 0 if none.
func (f *File) Line(key string) int {
	for key != "" {
		if l, ok := f.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// Errorf records a problem with key, at its line. A key whose value could not be
// decoded gets no further problem (it holds its default, not what the file says), nor
// does a check across keys that names such a key in its message (as a cross-field
// message does: "is smaller than store.max_batch").
func (f *File) Errorf(key, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if f.failed[key] {
		return
	}
	for k := range f.failed {
		if i := strings.Index(msg, k); i >= 0 && !keyChar(msg, i+len(k)) {
			return
		}
	}
	f.Errors = append(f.Errors, Error{File: f.Name, Line: f.Line(key), Key: key, Msg: msg})
}

// keyChar reports whether s[i] continues a dotted key.
func keyChar(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || c == '.' || c == '[' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

// Warnf records a warning about key, at its line.
func (f *File) Warnf(key, format string, a ...any) {
	f.Warnings = append(f.Warnings, Error{File: f.Name, Line: f.Line(key), Key: key, Msg: fmt.Sprintf(format, a...), Warning: true})
}

// Clean reports whether no error was recorded at key or below it (prefix "key." or
// "key["): a check that builds something from a section runs only on a clean one.
func (f *File) Clean(key string) bool {
	for _, e := range f.Errors {
		if e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(e.Key, key+"[") {
			return false
		}
	}
	return true
}

// Err returns the errors found, in the order of their lines, as an Errors; nil if
// there are none.
func (f *File) Err() error {
	if len(f.Errors) == 0 {
		return nil
	}
	f.Errors.Sort()
	return f.Errors
}

// Sort orders es by line (problems without a line first), keeping the order of
// problems on one line.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
}

// Location returns the household's time zone.
func (c *Config) Location() *time.Location {
	if c.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC // Validate reports it; never reached for a validated config
	}
	return loc
}

// validate checks every field and the relations between them; bad records a problem.
func (c *Config) validate(bad func(key, format string, a ...any)) {
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("log.format", c.Log.Format, "text", "json")
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			bad("timezone", "unknown time zone %q (an IANA name such as Europe/Amsterdam)", c.Timezone)
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	if c.Store.QuotaBytes < 1<<20 {
		bad("store.quota_bytes", "%d is below the minimum of 1048576 (1 MiB)", c.Store.QuotaBytes)
	}
	if c.Store.MaxAge <= 0 {
		bad("store.max_age", "must be positive")
	}
	if c.Store.MaxBatch < 1 || c.Store.MaxBatch > 100000 {
		bad("store.max_batch", "%d is not between 1 and 100000", c.Store.MaxBatch)
	}
	if c.Store.MaxDelay < 0 || c.Store.MaxDelay.D() > time.Second {
		bad("store.max_delay", "must be between 0 and 1s")
	}
	if c.Store.CommitPace < 0 || c.Store.CommitPace.D() > time.Second {
		bad("store.commit_pace", "must be between 0 and 1s")
	}
	if c.Store.FlashBudget < 0 {
		bad("store.flash_budget", "%d is negative (0 turns the budget off)", c.Store.FlashBudget)
	}
	if c.Store.QueueLen < c.Store.MaxBatch {
		bad("store.queue_len", "%d is smaller than store.max_batch (%d): a full batch could never be queued", c.Store.QueueLen, c.Store.MaxBatch)
	}
	if c.Ingest.MaxClockSkew <= 0 {
		bad("ingest.max_clock_skew", "must be positive (0 would not mean \"trust no device clock\": ingest would take its default)")
	}
	if c.Broker.Enabled {
		c.validateBroker(bad)
		if c.Broker.MaxPacketBytes < 128 || c.Broker.MaxPacketBytes > 256<<20 {
			bad("broker.max_packet_bytes", "%d is not between 128 and 268435456", c.Broker.MaxPacketBytes)
		}
		if c.Broker.MaxClients < 1 {
			bad("broker.max_clients", "must be at least 1")
		}
		if c.Broker.MaxInflight < 1 || c.Broker.MaxInflight > 65535 {
			bad("broker.max_inflight", "%d is not between 1 and 65535", c.Broker.MaxInflight)
		}
		if c.Broker.SessionExpiry <= 0 {
			bad("broker.session_expiry", "must be positive")
		}
	}
	checkListen(bad, "admin.listen", c.Admin.Listen)
	if c.Admin.ReadingsMax < 1 || c.Admin.ReadingsMax > 100000 {
		bad("admin.readings_max", "%d is not between 1 and 100000", c.Admin.ReadingsMax)
	}
	if c.Admin.ReadingsScan < 1000 || c.Admin.ReadingsScan > 100000000 {
		bad("admin.readings_scan", "%d is not between 1000 and 100000000", c.Admin.ReadingsScan)
	}
	if c.Broker.Enabled && c.Broker.Listen == c.Admin.Listen && !strings.HasSuffix(c.Admin.Listen, ":0") {
		bad("admin.listen", "%q is also broker.listen", c.Admin.Listen)
	}
	for key, d := range map[string]Duration{"rollup.interval": c.Rollup.Interval, "tagging.interval": c.Tagging.Interval} {
		if d <= 0 {
			bad(key, "must be positive")
		}
	}
	if p := c.Tagging.PeakHours; len(p) != 2 || p[0] < 0 || p[0] > 23 || p[1] < 0 || p[1] > 24 || p[0] == p[1] {
		bad("tagging.peak_hours", "%v: want [from, to] local hours, from 0..23, to 0..24, from != to", p)
	}
	c.validateSync(bad)
	c.validatePrivacy(bad)
	if c.Report.Interval < 0 {
		bad("report.interval", "must not be negative (0 turns the report off)")
	}
	if c.Stages.RestartMin < Duration(10*time.Millisecond) || c.Stages.RestartMin > Duration(time.Hour) {
		bad("stages.restart_min", "must be between 10ms and 1h")
	}
	if c.Stages.RestartMax < c.Stages.RestartMin || c.Stages.RestartMax > Duration(24*time.Hour) {
		bad("stages.restart_max", "must be between stages.restart_min and 24h")
	}
	if c.CPU.BurstRate < 0 {
		bad("cpu.burst_rate", "must not be negative (0 turns the choice off: every CPU throughout)")
	}
	if c.Stages.UnreadyAfter < 1 {
		bad("stages.unready_after", "must be at least 1")
	}
	if c.Sim.Enabled {
		if c.Sim.Speed <= 0 {
			bad("sim.speed", "must be positive")
		}
		if c.Sim.History < 0 {
			bad("sim.history", "must not be negative")
		}
		if !c.Broker.Enabled {
			bad("sim.enabled", "the simulated household publishes to the embedded broker: enable broker too")
		}
		known := false
		var names []string
		for _, p := range sim.Personas() {
			known = known || string(p) == c.Sim.Persona
			names = append(names, string(p))
		}
		if !known {
			bad("sim.persona", "%q is not one of %s", c.Sim.Persona, strings.Join(names, ", "))
		}
		first := map[string]int{}
		for i, k := range c.Sim.Kinds {
			key := fmt.Sprintf("sim.kinds[%d]", i)
			if err := device.Kind(k).Check(); err != nil {
				bad(key, "%v", err)
			}
			if j, dup := first[k]; dup {
				bad(key, "%q is also sim.kinds[%d]: one appliance per kind", k, j)
			}
			first[k] = i
		}
	}
	c.validateSerial(bad)
	c.validateMQTT(bad)
	c.validatePaths(bad)
	c.validateHubSensors(bad)
}

func checkListen(bad func(string, string, ...any), key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(key, "%q is not host:port (%v)", addr, err)
		return
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		bad(key, "%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		bad(key, "%q: host %q is not an IP address or localhost", addr, host)
	}
}
