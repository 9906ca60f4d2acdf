package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scratchModule writes a module with one function and a test that checks it.
func scratchModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":    "module m\n\ngo 1.26\n",
		"m.go":      "package m\n\nfunc Allowed(consent bool) bool {\n\tif !consent {\n\t\treturn false\n\t}\n\treturn true\n}\n\nfunc Unused() int { return 1 }\n",
		"m_test.go": "package m\n\nimport \"testing\"\n\nfunc TestAllowed(t *testing.T) {\n\tif Allowed(false) {\n\t\tt.Fatal(\"allowed without consent\")\n\t}\n}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheck(t *testing.T) {
	dir := scratchModule(t)
	caught := Mutation{ID: "consent", File: "m.go", From: "if !consent {", To: "if false && !consent {", Package: ".", Tests: []string{"TestAllowed"}}
	if by, err := check(dir, caught); err != nil || by != "TestAllowed" {
		t.Fatalf("a mutation the test catches: %q, %v", by, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "m.go")); !strings.Contains(string(b), "\tif !consent {") {
		t.Fatal("the file was not restored after the mutation")
	}
	missed := Mutation{ID: "unused", File: "m.go", From: "return 1 }", To: "return 2 }", Package: ".", Tests: []string{"TestAllowed"}}
	if _, err := check(dir, missed); err == nil || !strings.Contains(err.Error(), "NOT CAUGHT") {
		t.Fatalf("a mutation no test catches: %v", err)
	}
	moved := Mutation{ID: "moved", File: "m.go", From: "if consent {", To: "if false {", Package: ".", Tests: []string{"TestAllowed"}}
	if _, err := check(dir, moved); err == nil || !strings.Contains(err.Error(), "found 0 times") {
		t.Fatalf("a mutation whose text moved: %v", err)
	}
	broken := Mutation{ID: "build", File: "m.go", From: "return true\n}", To: "return true", Package: ".", Tests: []string{"TestAllowed"}}
	if _, err := check(dir, broken); err == nil || !strings.Contains(err.Error(), "not by a named test") {
		t.Fatalf("a mutation that breaks the build is not a catch: %v", err)
	}
}
