package admin

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The first call makes a 0600 file of 64 hex characters; the next ones read it back.
func TestTokenMadeOnceThenReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	tok, created, err := LoadOrCreateToken(path)
	if err != nil || !created {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Errorf("new token %q: want 64 hex characters", tok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	again, created, err := LoadOrCreateToken(path)
	if err != nil || created || again != tok {
		t.Errorf("second call: %q created %v %v; want the first token back", again, created, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	// Two files, two different tokens.
	other, _, err := LoadOrCreateToken(filepath.Join(t.TempDir(), "admin.token"))
	if err != nil || other == tok {
		t.Errorf("another file's token %q (%v): want a different one", other, err)
	}
}

// A token file someone wrote by hand: white space around it is ignored, and it
// may be any printable word of 32 characters or more.
func TestTokenWrittenByHand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok")
	want := "correct-horse-battery-staple-0123"
	if err := os.WriteFile(path, []byte("\n  "+want+"\r\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if tok, created, err := LoadOrCreateToken(path); err != nil || created || tok != want {
		t.Errorf("got %q created %v %v, want %q", tok, created, err, want)
	}
}

// A file that exists and cannot be used stops the agent, with the file named and
// the fix given; it is never replaced behind the household's back.
func TestTokenFileRefused(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"readable by others", long, 0o644, "(mode 0644); only its owner may read it: run `chmod 600 "},
		{"writable by group", long, 0o620, "(mode 0620)"},
		{"empty", "", 0o600, "is empty: delete it"},
		{"only white space", " \n\t\n", 0o600, "is empty"},
		{"too short", strings.Repeat("a", 31), 0o600, "holds 31 characters, fewer than 32"},
		{"two words", strings.Repeat("a", 20) + " " + strings.Repeat("b", 20), 0o600, "character 21 is not printable ASCII"},
		{"too large", strings.Repeat("a", 5000), 0o600, "larger than 4096 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "admin.token")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			tok, _, err := LoadOrCreateToken(path)
			if err == nil || !errors.Is(err, ErrTokenFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %q, %v; want ErrTokenFile naming %s and saying %q", tok, err, path, c.want)
			}
			if b, _ := os.ReadFile(path); string(b) != c.content {
				t.Error("the refused file was changed")
			}
		})
	}
	dir := t.TempDir()
	if _, _, err := LoadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), dir+" is not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir", "admin.token")
	if _, _, err := LoadOrCreateToken(missing); err == nil || !strings.Contains(err.Error(), "cannot create "+missing) {
		t.Errorf("in a missing directory: %v", err)
	}
}

// A client reads the token whatever the file's mode; a missing file is told apart.
func TestReadToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	if _, err := ReadToken(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	tok, _, err := LoadOrCreateToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ReadToken(path); err != nil || got != tok {
		t.Errorf("ReadToken = %q, %v; want %q", got, err, tok)
	}
}
