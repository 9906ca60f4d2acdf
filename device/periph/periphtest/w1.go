package periphtest

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyW1 copies the w1_slave file of the fixture directory src (one of
// device/periph/ds18b20/testdata) into dst, created as a probe's sysfs directory.
func CopyW1(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(src, "w1_slave"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "w1_slave"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
