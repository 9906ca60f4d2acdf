package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/device"
)

// The documented file must say exactly what the defaults are.
func TestDocumentedConfigIsTheDefault(t *testing.T) {
	cfg, err := Parse(configs.Hearth, "configs/hearth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("configs/hearth.yaml differs from Default():\n file: %+v\n code: %+v", cfg, Default())
	}
}

var update = flag.Bool("update", false, "rewrite the expected problems of testdata/config/*.yaml.err")

// problemsOf reads a test file and returns every problem found in it, errors then
// warnings, one per line, with the file named by its base name.
func problemsOf(t *testing.T, path string) (*File, string) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := ParseFile(src, filepath.Base(path))
	var b strings.Builder
	for _, e := range append(append(Errors{}, f.Errors...), f.Warnings...) {
		b.WriteString(e.Error() + "\n")
	}
	return f, b.String()
}

// Every file in testdata/config is paired with the problems it must produce, exactly
// (FILE.yaml.err: errors then warnings, one per line, as `hearth config check` prints
// them; no .err file: none). A *.bad.yaml has at least one error, a *.good.yaml none.
// go test -run TestConfigFiles -update rewrites the .err files.
func TestConfigFiles(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/config/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d configs in testdata/config", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, got := problemsOf(t, path)
			switch {
			case strings.HasSuffix(path, ".bad.yaml") && len(f.Errors) == 0:
				t.Errorf("no error in a bad config; problems:\n%s", got)
			case strings.HasSuffix(path, ".good.yaml") && len(f.Errors) > 0:
				t.Errorf("errors in a good config:\n%s", got)
			}
			if *update {
				if got == "" {
					_ = os.Remove(path + ".err")
					return
				}
				if err := os.WriteFile(path+".err", []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path + ".err")
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("problems differ (go test -run TestConfigFiles -update rewrites them)\n--- got:\n%s--- want:\n%s", got, want)
			}
		})
	}
}

// The good configs decode to the values they say, and every key they leave out keeps
// its default: each one's expected Config is Default() with the file's keys set.
func TestGoodConfigs(t *testing.T) {
	want := map[string]func(c *Config){
		"minimal.good.yaml": func(c *Config) {
			c.DataDir, c.Timezone = "/var/lib/hearth", "Europe/Amsterdam"
		},
		"production.good.yaml": func(c *Config) {
			c.DataDir, c.Timezone = "/var/lib/hearth", "Asia/Shanghai"
			c.Log = Log{Format: "json", Level: "warn"}
			c.Store.QuotaBytes, c.Store.MaxAge = 268435456, Duration(14*24*time.Hour)
			c.Broker.Listen, c.Broker.MaxClients = "0.0.0.0:1883", 64
			c.Sim.Enabled, c.Consent.Usage, c.Report.Interval = false, true, 0
		},
		"serial.good.yaml": func(c *Config) {
			p0 := DefaultSerialPort()
			p0.Name, p0.Path = "fridge", "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
			p1 := DefaultSerialPort()
			p1.USB = USBID{VID: "0403", PID: "6001"}
			p1.Baud, p1.Parity, p1.StopBits, p1.MaxPending = 9600, "even", "2", 4
			c.Serial = []SerialPort{p0, p1}
		},
		"mqtt.good.yaml": func(c *Config) {
			c.Broker.Listen, c.Broker.PublishRate, c.Broker.PublishBurst = "127.0.0.1:1883", 50, 100
			c.Sim.Enabled = false
			e := &c.MQTT.External
			e.URL, e.ClientID, e.MaxExtraSubscriptions = "tcp://192.168.1.10:1883", "hearth-kitchen", 64
			c.MQTT.Tasmota.FullTopics = []string{"%prefix%/%topic%/", "tasmota/%topic%/%prefix%/"}
			c.MQTT.Mappings = []MQTTMapping{
				{Source: "zigbee2mqtt", Name: "Fridge door", Device: "kitchen-fridge", Kind: device.KindFridge,
					Signals: map[string]device.Signal{"contact": device.SignalDoor, "temperature": device.SignalTemperature}},
				{Source: "tasmota", Name: "pow1", Device: "washer", Kind: device.KindWasher},
			}
		},
		"paths.good.yaml": func(c *Config) {
			c.DataDir, c.Store.File, c.Sync.Dir = "state", "db/hearth.db", "spool/outbox"
			c.Tagging.RulesFile, c.Admin.TokenFile = "rules/tags.yaml", "/etc/hearth/admin.token"
		},
		"hubsensors.good.yaml": func(c *Config) {
			c.Sim.Enabled = false
			door, air, pantry, probe, shelf := DefaultHubGPIO(), DefaultHubI2C(), DefaultHubI2C(), DefaultHubOneWire(), DefaultHubHX711()
			door.Pin = "GPIO17"
			air.Driver, air.Period = "sht3x", Duration(time.Minute)
			pantry.Bus, pantry.Address, pantry.Driver = "/dev/i2c-1", 0x77, "bme280"
			probe.Path = "/sys/bus/w1/devices/28-0316a2797cff"
			shelf.Clock, shelf.Data, shelf.Offset, shelf.Scale = "GPIO5", "GPIO6", 8388, -420.5
			shelf.Door, shelf.Category, shelf.ItemGrams = "fridge-door", "drinks", 330
			c.HubSensors = []HubSensor{
				{Name: "fridge-door", Device: "kitchen-fridge", Kind: "fridge", GPIO: &door},
				{Name: "fridge-air", Device: "kitchen-fridge", Kind: "fridge", I2C: &air},
				{Name: "pantry-air", Device: "pantry", Kind: "kitchen_cabinet", I2C: &pantry},
				{Name: "freezer-probe", Device: "kitchen-freezer", Kind: "freezer", OneWire: &probe},
				{Name: "drinks-shelf", Device: "kitchen-fridge", Kind: "fridge", HX711: &shelf},
			}
		},
		"sync.good.yaml": func(c *Config) {
			c.Sync.Transport, c.Sync.MaxBytesPerHour, c.Sync.Retry.ResumeSpread = "segment", 200000, Duration(8*time.Hour)
			c.Sync.Segment.Endpoint, c.Sync.Segment.WriteKeyFile = "https://hosted.rudderlabs.example", "/etc/hearth/segment.key"
			c.Consent.Usage = true
		},
		"warnings.good.yaml": func(c *Config) {
			c.Sim.Enabled = false
			c.MQTT.Mappings = []MQTTMapping{
				{Source: "zigbee2mqtt", Name: "zigbee2mqtt/Fridge Door", Device: "kitchen-fridge", Kind: device.KindFridge},
				{Source: "tasmota", Name: "tele/pow1/SENSOR", Device: "washer", Kind: device.KindWasher},
				{Source: "homeassistant", Name: "homeassistant/sensor/oven_power/config", Device: "oven", Kind: device.KindOven},
			}
		},
	}
	files, _ := filepath.Glob("../../testdata/config/*.good.yaml")
	if len(files) != len(want) {
		t.Errorf("%d good configs, %d with expected values: give each its expected Config here", len(files), len(want))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			set, ok := want[filepath.Base(path)]
			if !ok {
				t.Fatal("no expected values")
			}
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(src, filepath.Base(path))
			if err != nil {
				t.Fatal(err)
			}
			exp := Default()
			set(&exp)
			if !reflect.DeepEqual(cfg, exp) {
				t.Errorf("decoded:\n%+v\nwant:\n%+v", cfg, exp)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Errorf("err = %v", err)
	}
}

// admin.token_file defaults to admin.token in data_dir; set, it is used as given;
// a value that cannot name a file is an error on its line.
func TestAdminTokenFile(t *testing.T) {
	cfg, err := Parse([]byte("data_dir: /var/lib/hearth\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.AdminTokenFile(); got != filepath.Join("/var/lib/hearth", "admin.token") {
		t.Errorf("default AdminTokenFile = %q", got)
	}
	cfg, err = Parse([]byte("data_dir: /var/lib/hearth\nadmin:\n  token_file: /etc/hearth/admin.token\n"), "b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.AdminTokenFile(); got != "/etc/hearth/admin.token" {
		t.Errorf("AdminTokenFile = %q, want the configured file", got)
	}
	for _, bad := range []string{"/etc/hearth/", "' /etc/hearth/admin.token'"} {
		_, err := Parse([]byte("admin:\n  listen: 127.0.0.1:9880\n  token_file: "+bad+"\n"), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), "c.yaml:3: admin.token_file: ") {
			t.Errorf("token_file %s: %v, want an error on line 3", bad, err)
		}
	}
}

// Paths that may point anywhere are relative to the configuration file's directory,
// not to the working directory; paths inside data_dir stay as written (relative to
// data_dir); absolute paths are kept.
func TestLoadResolvesPathsAgainstTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hearth.yaml")
	body := "data_dir: state\nstore:\n  file: db/hearth.db\nsync:\n  dir: outbox\ntagging:\n  rules_file: rules/tags.yaml\n" +
		"broker:\n  tls_listen: 127.0.0.1:8883\n  tls_cert_file: tls/cert.pem\n  tls_key_file: /etc/ssl/key.pem\n" +
		"admin:\n  token_file: ../secrets/admin.token\nsim:\n  enabled: false\n" +
		"mqtt:\n  external:\n    url: tcp://127.0.0.1:1883\n    password_file: mqtt.password\n    ca_file: ca.pem\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, got, want string }{
		{"data_dir", cfg.DataDir, filepath.Join(dir, "state")},
		{"store.file", cfg.Store.File, "db/hearth.db"},
		{"sync.dir", cfg.Sync.Dir, "outbox"},
		{"tagging.rules_file", cfg.Tagging.RulesFile, filepath.Join(dir, "rules/tags.yaml")},
		{"broker.tls_cert_file", cfg.Broker.TLSCertFile, filepath.Join(dir, "tls/cert.pem")},
		{"broker.tls_key_file", cfg.Broker.TLSKeyFile, "/etc/ssl/key.pem"},
		{"admin.token_file", cfg.Admin.TokenFile, filepath.Join(filepath.Dir(dir), "secrets/admin.token")},
		{"mqtt.external.password_file", cfg.MQTT.External.PasswordFile, filepath.Join(dir, "mqtt.password")},
		{"mqtt.external.ca_file", cfg.MQTT.External.CAFile, filepath.Join(dir, "ca.pem")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.key, c.got, c.want)
		}
	}
}

// One bad value does not hide the others, nor is a wrong type let through: a float
// for an integer (max_clients: 12.5 was read as 12), a string for a duration, a list
// for a mapping, and a value out of range are each reported with key and line.
func TestEveryErrorWithKeyAndLine(t *testing.T) {
	src := "broker:\n  max_clients: 12.5\n  max_inflight: 0\nrollup:\n  interval: often\nlog: [json]\nstore:\n  max_batch: 1e3\n"
	_, err := Parse([]byte(src), "h.yaml")
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("err = %v, want Errors", err)
	}
	want := []string{
		"h.yaml:2: broker.max_clients: 12.5 is not an integer",
		"h.yaml:3: broker.max_inflight: 0 is not between 1 and 65535",
		`h.yaml:5: rollup.interval: "often" is not a duration (e.g. 30s, 5m, 28d)`,
		"h.yaml:6: log: a list is not a mapping of keys",
		"h.yaml:8: store.max_batch: 1e3 is not an integer",
	}
	if got := strings.Split(es.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
