package frame

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSpecExamples keeps SPEC.md honest: each worked example marked
// <!-- vector: NAME.hex --> must show exactly the wire bytes of that vector file, and
// every vector file the document names must exist.
func TestSpecExamples(t *testing.T) {
	spec, err := os.ReadFile("../SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	marked := regexp.MustCompile("(?s)<!-- vector: ([a-z0-9-]+\\.hex) -->\n```\n(.*?)```")
	examples := marked.FindAllStringSubmatch(string(spec), -1)
	if len(examples) < 5 {
		t.Fatalf("found %d marked examples in SPEC.md, want at least 5", len(examples))
	}
	for _, m := range examples {
		data, err := os.ReadFile(filepath.Join(vectorDir, m[1]))
		if err != nil {
			t.Errorf("SPEC.md example: %v", err)
			continue
		}
		if want := parseVector(t, m[1], data).wireText; m[2] != want {
			t.Errorf("SPEC.md example for %s shows\n%s\nbut the vector's wire bytes are\n%s", m[1], m[2], want)
		}
	}
	for _, m := range regexp.MustCompile("`([a-z0-9-]+\\.hex)`").FindAllStringSubmatch(string(spec), -1) {
		if _, err := os.Stat(filepath.Join(vectorDir, m[1])); err != nil {
			t.Errorf("SPEC.md names %s: %v", m[1], err)
		}
	}
	// The C code in the document uses the same limits as the Go code.
	for _, want := range []string{
		fmt.Sprintf("#define HEARTH_VERSION       %d\n", Version),
		fmt.Sprintf("#define HEARTH_MAX_FRAME     %d ", MaxFrame),
		fmt.Sprintf("#define HEARTH_MAX_HUB_FRAME %d ", MaxHubFrame),
	} {
		if !strings.Contains(string(spec), want) {
			t.Errorf("SPEC.md lacks %q", want)
		}
	}
}
