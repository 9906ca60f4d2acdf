// Command promises checks that the tests defend hearth's promises: each mutation in
// docs/promises.yaml breaks one promise with a one-line change, and the test it names
// must then fail. The mutations are applied one at a time to a scratch copy of the
// working tree, never to the tree itself.
//
//	go run ./tools/promises             run every mutation (make test-promises)
//	go run ./tools/promises -run ID     one mutation
//	go run ./tools/promises -doc        rewrite docs/promises.md from the list
//
// A mutation whose text is no longer found exactly once fails the run too: the code
// moved, and the list must follow it.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mutation is one entry of docs/promises.yaml.
type Mutation struct {
	ID      string   `yaml:"id"`
	Promise string   `yaml:"promise"`
	File    string   `yaml:"file"`
	From    string   `yaml:"from"`
	To      string   `yaml:"to"`
	Package string   `yaml:"package"`
	Tests   []string `yaml:"tests"`
}

const (
	listFile = "docs/promises.yaml"
	docFile  = "docs/promises.md"
)

func main() {
	only := flag.String("run", "", "run only the mutation with this id")
	doc := flag.Bool("doc", false, "write "+docFile+" from "+listFile+" and exit")
	flag.Parse()
	if err := run(*only, *doc, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "promises:", err)
		os.Exit(1)
	}
}

func load(root string) ([]Mutation, error) {
	b, err := os.ReadFile(filepath.Join(root, listFile))
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var ms []Mutation
	if err := dec.Decode(&ms); err != nil {
		return nil, fmt.Errorf("%s: %w", listFile, err)
	}
	seen := map[string]bool{}
	for i, m := range ms {
		switch {
		case m.ID == "" || m.Promise == "" || m.File == "" || m.From == "" || m.Package == "" || len(m.Tests) == 0:
			return nil, fmt.Errorf("%s: entry %d (%q): id, promise, file, from, package and tests are required", listFile, i+1, m.ID)
		case m.From == m.To:
			return nil, fmt.Errorf("%s: %s: from and to are the same", listFile, m.ID)
		case seen[m.ID]:
			return nil, fmt.Errorf("%s: %s: id given twice", listFile, m.ID)
		}
		seen[m.ID] = true
	}
	return ms, nil
}

func run(only string, doc bool, out io.Writer) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	ms, err := load(root)
	if err != nil {
		return err
	}
	if doc {
		return os.WriteFile(filepath.Join(root, docFile), markdown(ms), 0o644)
	}
	if cur, err := os.ReadFile(filepath.Join(root, docFile)); err != nil || !bytes.Equal(cur, markdown(ms)) {
		return fmt.Errorf("%s is not what %s says: run `go run ./tools/promises -doc`", docFile, listFile)
	}
	base, err := os.MkdirTemp("", "hearth-promises-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	scratch := filepath.Join(base, "hearth")
	if err := copyTree(root, scratch); err != nil {
		return fmt.Errorf("scratch copy: %w", err)
	}
	var failed []string
	for _, m := range ms {
		if only != "" && m.ID != only {
			continue
		}
		start := time.Now()
		verdict, err := check(scratch, m)
		if err != nil {
			failed = append(failed, m.ID)
			fmt.Fprintf(out, "FAIL   %-32s %v\n", m.ID, err)
			continue
		}
		fmt.Fprintf(out, "caught %-32s by %s (%.1fs)\n", m.ID, verdict, time.Since(start).Seconds())
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d mutation(s) not caught or not applicable: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// check runs m's tests on the scratch copy as it is (they must pass), then with the
// mutation applied (one of them must fail by name), and restores the file.
func check(scratch string, m Mutation) (string, error) {
	path := filepath.Join(scratch, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if n := bytes.Count(orig, []byte(m.From)); n != 1 {
		return "", fmt.Errorf("%s: the text to mutate is found %d times, not once: the code moved, update %s", m.File, n, listFile)
	}
	pattern := "^(" + strings.Join(m.Tests, "|") + ")$"
	if out, err := goTest(scratch, m.Package, pattern); err != nil {
		return "", fmt.Errorf("the tests fail without the mutation: %v\n%s", err, tail(out))
	}
	if err := os.WriteFile(path, bytes.Replace(orig, []byte(m.From), []byte(m.To), 1), 0o644); err != nil {
		return "", err
	}
	defer os.WriteFile(path, orig, 0o644)
	out, err := goTest(scratch, m.Package, pattern)
	if err == nil {
		return "", fmt.Errorf("NOT CAUGHT: %s passes with the mutation", strings.Join(m.Tests, ", "))
	}
	for _, t := range m.Tests {
		if regexp.MustCompile(`(?m)^\s*--- FAIL: ` + regexp.QuoteMeta(t) + `\b`).Match(out) {
			return t, nil
		}
	}
	return "", fmt.Errorf("the run failed, but not by a named test (a build error?):\n%s", tail(out))
}

func goTest(dir, pkg, pattern string) ([]byte, error) {
	cmd := exec.Command("go", "test", "-count=1", "-timeout", "10m", "-run", pattern, pkg)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// copyTree copies the working tree's files that git knows or would add (tracked and
// untracked, not ignored), so uncommitted work is checked as it is.
func copyTree(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	list, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range bytes.Split(list, []byte{0}) {
		if len(name) == 0 {
			continue
		}
		src := filepath.Join(root, string(name))
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, string(name))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	// Tests read ../shared beside the repository.
	shared, err := filepath.Abs(filepath.Join(root, "..", "shared"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(shared); err != nil {
		return nil
	}
	return os.Symlink(shared, filepath.Join(filepath.Dir(dst), "shared"))
}

func markdown(ms []Mutation) []byte {
	var b strings.Builder
	b.WriteString(`# Promises and the tests that defend them

Generated from [promises.yaml](promises.yaml) by ` + "`go run ./tools/promises -doc`" + `; edit the YAML.

hearth's README promises a few things a household and an appliance maker rely on. For each,
a one-line mutation of the code breaks the promise, and a named test must then fail:
` + "`make test-promises`" + ` (run by ` + "`.ci/run`" + `) applies each mutation to a scratch copy of the
tree, checks that the tests pass without it and that the named test fails with it. A
mutation whose text moved fails the run as well, so this list follows the code.

| id | promise | mutation | caught by |
|---|---|---|---|
`)
	for _, m := range ms {
		fmt.Fprintf(&b, "| `%s` | %s | `%s`: %s | `%s` (%s) |\n", m.ID, m.Promise, m.File, mdCode(m.From, m.To), strings.Join(m.Tests, "`, `"), m.Package)
	}
	return []byte(b.String())
}

// mdCode shows a mutation in a table cell: the first changed line, before and after.
func mdCode(from, to string) string {
	f, t := strings.Split(from, "\n"), strings.Split(to, "\n")
	for i := range f {
		if i < len(t) && f[i] != t[i] {
			return "<code>" + esc(strings.TrimSpace(f[i])) + "</code> → <code>" + esc(strings.TrimSpace(t[i])) + "</code>"
		}
	}
	return "<code>" + esc(strings.TrimSpace(f[0])) + "</code> → <code>" + esc(strings.TrimSpace(t[0])) + "</code>"
}

func esc(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "&", "&amp;").Replace(s)
}
