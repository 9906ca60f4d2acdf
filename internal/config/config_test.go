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
