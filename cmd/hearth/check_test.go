package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runStopped runs the CLI with a context that is already cancelled: `hearth run`
// either refuses to start (exit 1) or starts and stops at once (exit 0), so a test
// learns which without waiting.
func runStopped(args ...string) (code int, stdout, stderr string) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// What `hearth run` refuses, `hearth config check` reports, at the same key and line,
// and the other way round: the checks against the machine are one code path
// (checkSystem). For each case, config check exits 1 naming FILE:LINE: KEY, run
// refuses the same file with the same line and leaves no data directory behind.
func TestConfigCheckAgreesWithRun(t *testing.T) {
	junk := func(name string, mode os.FileMode) func(t *testing.T, dir, data string) {
		return func(t *testing.T, dir, _ string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("not what it should be\n"), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	const tls = "  tls_listen: 127.0.0.1:0\n  tls_cert_file: cert.pem\n  tls_key_file: key.pem\n"
	cases := []struct {
		name          string
		broker, admin string // more keys of these sections
		body          string // more sections
		setup         func(t *testing.T, dir, data string)
		want          string // ":LINE: KEY: " and a piece of the message
	}{
		// Lines: 1 data_dir, 2-3 broker, broker's more, admin (2 lines), admin's more, body.
		{name: "rules file missing", body: "sim:\n  enabled: false\ntagging:\n  rules_file: rules.yaml\n",
			want: ":9: tagging.rules_file: open "},
		{name: "rules file does not parse", body: "sim:\n  enabled: false\ntagging:\n  rules_file: rules.yaml\n",
			setup: junk("rules.yaml", 0o644), want: ":9: tagging.rules_file: bad tag rules: %DIR%/rules.yaml: "},
		{name: "data_dir is a file", body: "sim:\n  enabled: false\n",
			setup: func(t *testing.T, _, data string) {
				if err := os.MkdirAll(filepath.Dir(data), 0o750); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Dir(data), filepath.Base(data), "x")
			},
			want: ":1: data_dir: %DATA% is not a directory"},
		{name: "data_dir below a file", body: "sim:\n  enabled: false\n",
			setup: func(t *testing.T, _, data string) { writeFile(t, filepath.Dir(filepath.Dir(data)), "base", "x") },
			want:  ":1: data_dir: cannot create %DATA%: "},
		{name: "TLS key pair missing", broker: tls, body: "sim:\n  enabled: false\n",
			want: ":5: broker.tls_cert_file: with broker.tls_key_file: open "},
		{name: "TLS key pair not PEM", broker: tls, body: "sim:\n  enabled: false\n",
			setup: func(t *testing.T, dir, data string) {
				junk("cert.pem", 0o600)(t, dir, data)
				junk("key.pem", 0o600)(t, dir, data)
			},
			want: ":5: broker.tls_cert_file: with broker.tls_key_file: tls: "},
		{name: "CA file without a certificate", body: "sim:\n  enabled: false\nmqtt:\n  external:\n    url: tcp://127.0.0.1:1\n    ca_file: ca.pem\n",
			setup: junk("ca.pem", 0o644), want: ":11: mqtt.external.ca_file: %DIR%/ca.pem holds no PEM certificate"},
		{name: "password file missing", body: "sim:\n  enabled: false\nmqtt:\n  external:\n    url: tcp://127.0.0.1:1\n    password_file: pw\n",
			want: ":11: mqtt.external.password_file: open "},
		{name: "password file open to others", body: "sim:\n  enabled: false\nmqtt:\n  external:\n    url: tcp://127.0.0.1:1\n    password_file: pw\n",
			setup: junk("pw", 0o644), want: ":11: mqtt.external.password_file: %DIR%/pw is open to others (mode 0644)"},
		{name: "admin token open to others", admin: "  token_file: admin.token\n", body: "sim:\n  enabled: false\n",
			setup: func(t *testing.T, dir, _ string) {
				writeFile(t, dir, "admin.token", strings.Repeat("ab", 32))
				if err := os.Chmod(filepath.Join(dir, "admin.token"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: ":6: admin.token_file: unusable admin token file: %DIR%/admin.token is open to group or others"},
		{name: "sync.dir is a file", body: "sim:\n  enabled: false\n",
			setup: func(t *testing.T, _, data string) {
				if err := os.MkdirAll(data, 0o750); err != nil {
					t.Fatal(err)
				}
				writeFile(t, data, "outbox", "x")
			},
			want: ": sync.dir: %DATA%/outbox exists and is not a directory"},
		{name: "sync.dir outside data_dir", body: "sim:\n  enabled: false\nsync:\n  dir: ../../elsewhere\n",
			want: `:9: sync.dir: "../../elsewhere" is not inside data_dir`},
		{name: "store.file outside data_dir", body: "sim:\n  enabled: false\nstore:\n  file: ../hearth.db\n",
			want: `:9: store.file: "../hearth.db" is not inside data_dir`},
		{name: "sim kind the simulation lacks", body: "sim:\n  enabled: true\n  kinds: [fridge, plug]\n",
			want: `:8: sim.kinds: unsupported appliance kind: "plug"`},
		{name: "sim history before 1971", body: "sim:\n  enabled: true\n  history: 30000d\n",
			want: ":6: sim: invalid options: start year "},
		{name: "zigbee2mqtt base topic", body: "sim:\n  enabled: false\nmqtt:\n  zigbee2mqtt:\n    base_topic: /zigbee2mqtt\n",
			want: ":9: mqtt.zigbee2mqtt: mqtt zigbee2mqtt: base topic: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(t.TempDir(), "base", "data")
			if c.setup != nil {
				c.setup(t, dir, data)
			}
			_, statErr := os.Lstat(data)
			path := writeFile(t, dir, "hearth.yaml", "data_dir: "+data+"\nbroker:\n  listen: 127.0.0.1:0\n"+c.broker+
				"admin:\n  listen: 127.0.0.1:0\n"+c.admin+c.body)
			want := path + strings.NewReplacer("%DIR%", dir, "%DATA%", data).Replace(c.want)
			code, out, errs := runCLI(t, "config", "check", path)
			if code != 1 || !strings.Contains(errs, want) {
				t.Errorf("config check: exit %d, want 1 and %q in stderr:\n%s%s", code, want, out, errs)
			}
			code, _, errs = runStopped("run", "--config", path)
			if code != 1 || !strings.Contains(errs, want) {
				t.Errorf("run: exit %d, want 1 and %q in stderr:\n%s", code, want, errs)
			}
			if _, err := os.Lstat(data); err == nil && statErr != nil {
				t.Errorf("run refused but left %s behind", data)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(data)), "elsewhere")); err == nil {
				t.Error("a directory was made outside data_dir")
			}
		})
	}
}

// config check lists every problem of a file with many, each with its key and line,
// and a count; a float where an integer belongs is one of them.
func TestConfigCheckListsEveryError(t *testing.T) {
	src, err := os.ReadFile("../../testdata/config/many.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "many.yaml", string(src))
	code, _, errs := runCLI(t, "config", "check", path)
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 1 || len(lines) < 15 {
		t.Fatalf("exit %d, %d lines, want 1 and every problem:\n%s", code, len(lines), errs)
	}
	for _, want := range []string{
		path + ":8: store.max_batch: 12.5 is not an integer",
		path + ":13: broker.max_clients: 12.5 is not an integer",
		path + ":10: store.max_age: \"soon\" is not a duration",
		path + ":26: serial[0].baudrate: unknown key \"baudrate\"",
		path + ":20: sync.dir: \"../../elsewhere\" is not inside data_dir",
		path + ":33: mqtt.mappings[0].device: id \".\" starts with '.'",
		path + ":38: mqtt.mappings[1].kind: \"spaceship\" is not a known kind",
		path + ":36: warning: mqtt.mappings[1].name: \"zigbee2mqtt/Washer\" looks like a topic",
	} {
		if !strings.Contains(errs, want+"") {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if last := lines[len(lines)-1]; last != fmt.Sprintf("%s: %d error(s), 1 warning(s)", path, len(lines)-2) {
		t.Errorf("last line %q: want the count of the %d problems above", last, len(lines)-1)
	}
}

// A mapping name written as a topic is valid but never matches: config check warns
// and exits 0; run starts and logs the same warning.
func TestConfigWarningsPassAndAreLogged(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "hearth.yaml", "data_dir: "+filepath.Join(dir, "data")+
		"\nbroker:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nsim:\n  enabled: false\nmqtt:\n  mappings:\n"+
		"    - {source: zigbee2mqtt, name: zigbee2mqtt/Fridge Door, device: kitchen-fridge, kind: fridge}\n")
	want := path + `:10: warning: mqtt.mappings[0].name: "zigbee2mqtt/Fridge Door" looks like a topic: write the name without "zigbee2mqtt/" ("Fridge Door")`
	code, out, errs := runCLI(t, "config", "check", path)
	if code != 0 || !strings.Contains(out, "ok, 1 warning(s)") || !strings.Contains(errs, want) {
		t.Errorf("config check: exit %d, stdout %q, stderr:\n%s\nwant 0, ok and %q", code, out, errs, want)
	}
	code, _, errs = runStopped("run", "--config", path)
	if code != 0 || !strings.Contains(errs, "level=WARN msg=configuration") || !strings.Contains(errs, `Fridge Door\" looks like a topic`) {
		t.Errorf("run: exit %d, want 0 and the warning logged:\n%s", code, errs)
	}
}

// The other direction: a file whose every path and secret is in order — a TLS key
// pair, a password file its group may read (0640), a CA file, a rules file, a token
// file, all relative to the file's directory — passes config check, and run starts on
// it.
func TestConfigCheckPassesWhatRunAccepts(t *testing.T) {
	dir := t.TempDir()
	writeSelfSigned(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	writeFile(t, dir, "pw", "secret\n")
	if err := os.Chmod(filepath.Join(dir, "pw"), 0o640); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("../../configs/tags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tags.yaml", string(rules))
	writeFile(t, dir, "admin.token", strings.Repeat("ab", 32))
	path := writeFile(t, dir, "hearth.yaml", "data_dir: data\nbroker:\n  listen: 127.0.0.1:0\n  tls_listen: 127.0.0.1:0\n"+
		"  tls_cert_file: cert.pem\n  tls_key_file: key.pem\nadmin:\n  listen: 127.0.0.1:0\n  token_file: admin.token\n"+
		"tagging:\n  rules_file: tags.yaml\nsim:\n  enabled: true\n  kinds: [fridge, oven]\n"+
		"mqtt:\n  external:\n    url: ssl://127.0.0.1:1\n    password_file: pw\n    ca_file: cert.pem\n")
	if code, out, errs := runCLI(t, "config", "check", path); code != 0 || out != path+": ok\n" {
		t.Errorf("config check: exit %d, %q %s", code, out, errs)
	}
	if code, _, errs := runStopped("run", "--config", path); code != 0 {
		t.Errorf("run: exit %d:\n%s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "hearth.db")); err != nil {
		t.Errorf("run did not make its store in data_dir relative to the file: %v", err)
	}
}
