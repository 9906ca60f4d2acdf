// Package config reads hearth.yaml: strict decoding (an unknown key is an error that
// names the key and its line), defaults for everything left out, and one Validate
// across fields that lists every problem with its line.
//
// configs/hearth.yaml documents every key, next to it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // a hub may have no zoneinfo: timezones come with the binary

	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
)

// Duration is a time.Duration written as "90s", "5m", "36h" or "28d".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if v, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m, 28d)", n.Line, s)
		}
		*d = Duration(time.Duration(f * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 30s, 5m, 28d)", n.Line, s)
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
	Sim             Sim          `yaml:"sim"`
	Report          Report       `yaml:"report"`
	Serial          []SerialPort `yaml:"serial"`
	MQTT            MQTT         `yaml:"mqtt"`
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
}

type Admin struct {
	Listen    string `yaml:"listen"`
	TokenFile string `yaml:"token_file"` // "": admin.token in data_dir (see AdminTokenFile)
	Pprof     bool   `yaml:"pprof"`
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
	Interval  Duration `yaml:"interval"`
	PeakHours []int    `yaml:"peak_hours"` // [from, to) local hours of energy.peak_hour_use
}

type Sync struct {
	Interval      Duration `yaml:"interval"`
	Transport     string   `yaml:"transport"`
	Dir           string   `yaml:"dir"`
	BatchCount    int      `yaml:"batch_count"`
	BatchBytes    int      `yaml:"batch_bytes"`
	BatchAge      Duration `yaml:"batch_age"`
	DayCloseGrace Duration `yaml:"day_close_grace"`
}

type Consent struct {
	Usage     bool `yaml:"usage"`
	Sensitive bool `yaml:"sensitive"`
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

// Default returns the configuration hearth runs with when no file is given: the
// embedded demo (broker, store under ./data, a simulated household, local file sink).
func Default() Config {
	return Config{
		DataDir:         "./data",
		Timezone:        "",
		ShutdownTimeout: Duration(10 * time.Second),
		Log:             Log{Format: "text", Level: "info"},
		Store: Store{File: "hearth.db", QuotaBytes: 64 << 20, MaxAge: Duration(30 * 24 * time.Hour),
			MaxBatch: 2000, MaxDelay: 0, CommitPace: Duration(5 * time.Millisecond), QueueLen: 20000},
		Ingest: Ingest{MaxClockSkew: Duration(5 * time.Minute)},
		Broker: Broker{Enabled: true, Listen: "127.0.0.1:1883", MaxPacketBytes: 64 << 10, MaxClients: 256,
			MaxInflight: 64, MaxPendingWrites: 64, SessionExpiry: Duration(24 * time.Hour),
			ConnectTimeout: Duration(10 * time.Second), MaxConnecting: 32, PublishRate: 200, PublishBurst: 400,
			LockoutFailures: 5, LockoutWindow: Duration(time.Minute)},
		Admin:   Admin{Listen: "127.0.0.1:9880"},
		Rollup:  Rollup{Interval: Duration(2 * time.Second)},
		Tagging: Tagging{Interval: Duration(5 * time.Second), PeakHours: []int{17, 21}},
		Sync: Sync{Interval: Duration(2 * time.Second), Transport: "file", Dir: "outbox",
			BatchCount: 500, BatchBytes: 256 << 10, BatchAge: Duration(10 * time.Second),
			DayCloseGrace: Duration(2 * time.Hour)},
		Sim: Sim{Enabled: true, Persona: "default", Seed: 1, Speed: 10080, History: Duration(28 * 24 * time.Hour),
			Kinds: []string{}},
		Report: Report{Interval: Duration(10 * time.Second)},
		Serial: []SerialPort{},
		MQTT:   DefaultMQTT(),
	}
}

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int    // 0 when the problem has no single line
	Key  string // dotted path, e.g. store.quota_bytes
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, decodes and validates the file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, path)
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)

// Parse decodes src (named name in errors) over the defaults and validates it.
func Parse(src []byte, name string) (Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return Config{}, Errors{yamlError(name, err)}
	}
	if len(bytes.TrimSpace(src)) == 0 {
		return cfg, cfg.validate(name, &root)
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var es Errors
			for _, m := range te.Errors {
				es = append(es, decodeError(name, &root, m))
			}
			return Config{}, es
		}
		return Config{}, Errors{decodeError(name, &root, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	return cfg, cfg.validate(name, &root)
}

func yamlError(name string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: name, Line: line, Msg: m[2]}
	}
	return Error{File: name, Msg: msg}
}

// decodeError turns one of yaml.v3's messages into an Error with line and key.
func decodeError(name string, root *yaml.Node, msg string) Error {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return Error{File: name, Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	if u := unknownFieldRE.FindStringSubmatch(rest); u != nil {
		return Error{File: name, Line: line, Key: keyAtLine(root, line, u[1]), Msg: fmt.Sprintf("unknown key %q", u[1])}
	}
	return Error{File: name, Line: line, Key: keyAtLine(root, line, ""), Msg: rest}
}

// keyAtLine finds the dotted path of the mapping key on line (named want, if given).
func keyAtLine(n *yaml.Node, line int, want string) string {
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				if p := walk(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if (k.Line == line || v.Line == line) && (want == "" || k.Value == want) {
					if want == "" && v.Kind == yaml.MappingNode && k.Line != line {
						return walk(v, p)
					}
					return p
				}
				if r := walk(v, p); r != "" {
					return r
				}
			}
		}
		return ""
	}
	return walk(n, "")
}

// lineOf returns the line of the key at dotted path in root, or 0.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(path, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
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

// validate checks every field and the relations between them.
func (c *Config) validate(name string, root *yaml.Node) error {
	var es Errors
	bad := func(key, format string, a ...any) {
		es = append(es, Error{File: name, Line: lineOf(root, key), Key: key, Msg: fmt.Sprintf(format, a...)})
	}
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
	if c.Store.File == "" || strings.ContainsRune(c.Store.File, os.PathSeparator) {
		bad("store.file", "must be a file name inside data_dir")
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
	if c.Store.QueueLen < c.Store.MaxBatch {
		bad("store.queue_len", "%d is smaller than store.max_batch (%d): a full batch could never be queued", c.Store.QueueLen, c.Store.MaxBatch)
	}
	if c.Ingest.MaxClockSkew < 0 {
		bad("ingest.max_clock_skew", "must not be negative")
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
	if f := c.Admin.TokenFile; f != "" && (strings.TrimSpace(f) != f || strings.HasSuffix(f, string(os.PathSeparator))) {
		bad("admin.token_file", "%q is not a file path (no surrounding spaces, no trailing %c); empty means %s in data_dir",
			f, os.PathSeparator, DefaultTokenFile)
	}
	if c.Broker.Enabled && c.Broker.Listen == c.Admin.Listen && !strings.HasSuffix(c.Admin.Listen, ":0") {
		bad("admin.listen", "%q is also broker.listen", c.Admin.Listen)
	}
	for key, d := range map[string]Duration{"rollup.interval": c.Rollup.Interval, "tagging.interval": c.Tagging.Interval,
		"sync.interval": c.Sync.Interval, "sync.batch_age": c.Sync.BatchAge} {
		if d <= 0 {
			bad(key, "must be positive")
		}
	}
	if p := c.Tagging.PeakHours; len(p) != 2 || p[0] < 0 || p[0] > 23 || p[1] < 0 || p[1] > 24 || p[0] == p[1] {
		bad("tagging.peak_hours", "%v: want [from, to] local hours, from 0..23, to 0..24, from != to", p)
	}
	oneOf("sync.transport", c.Sync.Transport, "file")
	if c.Sync.DayCloseGrace <= 0 || c.Sync.DayCloseGrace.D() > 7*24*time.Hour {
		bad("sync.day_close_grace", "must be between 0 and 7d")
	}
	if c.Sync.BatchCount < 1 {
		bad("sync.batch_count", "must be at least 1")
	}
	if c.Sync.BatchBytes < 1024 {
		bad("sync.batch_bytes", "%d is below the minimum of 1024", c.Sync.BatchBytes)
	}
	if c.Report.Interval < 0 {
		bad("report.interval", "must not be negative (0 turns the report off)")
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
		for i, k := range c.Sim.Kinds {
			if !device.Kind(k).Valid() {
				bad("sim.kinds", "item %d: unknown kind %q", i+1, k)
			}
		}
	}
	c.validateSerial(bad)
	c.validateMQTT(bad)
	if len(es) > 0 {
		return es
	}
	return nil
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
