package fileperm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" for accepted
	}{
		{0o600, ""}, {0o400, ""}, {0o640, "mode 0640"}, {0o604, "mode 0604"}, {0o660, "chmod 600"},
	} {
		p := filepath.Join(dir, "secret")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		err = OwnerOnly(p, fi)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mode %04o: %v, want accepted", tc.mode, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p)):
			t.Errorf("mode %04o: %v, want an error naming %s with %q", tc.mode, err, p, tc.want)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := OwnerOnly(dir, fi); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v, want not a regular file", err)
	}
}

func TestWritePrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivate(p, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "new\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("%q mode %04o, want \"new\\n\" mode 0600", b, fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".key.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := WritePrivate(filepath.Join(dir, "missing", "key"), []byte("x")); err == nil {
		t.Error("a file in a missing directory was written")
	}
}
