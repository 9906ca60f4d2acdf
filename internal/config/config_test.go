package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hearth-iot/hearth/configs"
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

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/config/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good configs in testdata/config")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Each bad config is paired with the errors it must produce (FILE.bad.yaml →
// FILE.bad.yaml.err, one expected substring per line, each on its own error line).
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/config/*.bad.yaml")
	if len(files) == 0 {
		t.Fatal("no bad configs in testdata/config")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(f + ".err")
			if err != nil {
				t.Fatalf("missing expected errors: %v", err)
			}
			_, err = Load(f)
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error()
			lines := strings.Split(strings.TrimSpace(string(want)), "\n")
			for _, w := range lines {
				if !strings.Contains(got, w) {
					t.Errorf("error does not contain %q:\n%s", w, got)
				}
			}
			if n := len(strings.Split(got, "\n")); n != len(lines) {
				t.Errorf("got %d errors, want %d:\n%s", n, len(lines), got)
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
