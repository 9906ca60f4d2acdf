package importrules

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/hearth-iot/hearth"

type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", mod+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var ps []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 10 {
		t.Fatalf("go list found only %d packages", len(ps))
	}
	return ps
}

func under(path, dir string) bool {
	full := mod + "/" + dir
	return path == full || strings.HasPrefix(path, full+"/")
}

// rule says: packages under from must not import packages matching to.
type rule struct {
	from string
	bad  func(imp string) bool
	why  string
}

func rules() []rule {
	inTree := func(dirs ...string) func(string) bool {
		return func(imp string) bool {
			for _, d := range dirs {
				if under(imp, d) {
					return true
				}
			}
			return false
		}
	}
	return []rule{
		{"firmware-proto", inTree("device", "edge", "sync", "cmd", "internal"), "the protocol stands alone: firmware teams read it"},
		{"device", inTree("edge", "sync", "cmd"), "sources never see the pipeline"},
		{"edge", inTree("sync", "cmd"), "data flows one way: edge never reaches upstream"},
		{"sync", func(imp string) bool {
			return under(imp, "cmd") || (under(imp, "device") && imp != mod+"/device") ||
				(under(imp, "edge") && !under(imp, "edge/store") && !under(imp, "edge/record"))
		}, "sync sees the edge only through the store's typed views (and the records they return)"},
	}
}

// pure are the packages of pure code (no I/O): what of the module and of the
// standard library each may import.
var pure = map[string]struct {
	module []string // module packages allowed
	why    string
}{
	"edge/rollup": {[]string{"device", "edge/record"}, "rollup aggregates, the store persists: the package does no I/O"},
	"edge/record": {[]string{"device"}, "records are data"},
}

// ioPackages are standard-library packages a pure package must not import.
var ioPackages = []string{"os", "os/exec", "net", "net/http", "syscall", "io/fs", "path/filepath", "database/sql", "log/slog"}

func TestPurePackages(t *testing.T) {
	seen := 0
	for _, p := range listPackages(t) {
		rule, ok := pure[strings.TrimPrefix(p.ImportPath, mod+"/")]
		if !ok {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, mod+"/") {
				allowed := false
				for _, a := range rule.module {
					allowed = allowed || imp == mod+"/"+a
				}
				if !allowed {
					t.Errorf("%s imports %s: not allowed (%s)", p.ImportPath, imp, rule.why)
				}
				continue
			}
			for _, io := range ioPackages {
				if imp == io || strings.HasPrefix(imp, "go.etcd.io/bbolt") {
					t.Errorf("%s imports %s: not allowed (%s)", p.ImportPath, imp, rule.why)
				}
			}
		}
	}
	if seen != len(pure) {
		t.Errorf("found %d of the %d pure packages: a rule names a package that moved", seen, len(pure))
	}
}

// The whole graph is wired in one place: only cmd/ builds sources, pipeline and sync
// together, and only edge/pipeline (and cmd/) assembles ingest with tagging, so that
// the agent, replay and eval build the pipeline one way. internal/config imports the
// components only to read their defaults (DefaultOptions): it builds nothing.
func TestOnlyCmdWires(t *testing.T) {
	for _, p := range listPackages(t) {
		if under(p.ImportPath, "cmd") {
			continue
		}
		has := map[string]bool{}
		for _, imp := range p.Imports {
			has[strings.TrimPrefix(imp, mod+"/")] = true
			// internal/config reads the components' defaults (it wires nothing)
			if under(imp, "sync") && !under(p.ImportPath, "sync") && !under(p.ImportPath, "internal/config") {
				t.Errorf("%s imports %s: only cmd/ wires sync to the rest", p.ImportPath, imp)
			}
		}
		if has["edge/ingest"] && has["edge/tagging"] && p.ImportPath != mod+"/edge/pipeline" && p.ImportPath != mod+"/internal/config" {
			t.Errorf("%s assembles the pipeline itself (imports edge/ingest and edge/tagging): use edge/pipeline", p.ImportPath)
		}
	}
}

func TestImportRules(t *testing.T) {
	ps := listPackages(t)
	checked := 0
	for _, p := range ps {
		for _, r := range rules() {
			if !under(p.ImportPath, r.from) {
				continue
			}
			checked++
			for _, imp := range p.Imports {
				if r.bad(imp) {
					t.Errorf("%s imports %s: not allowed (%s)", p.ImportPath, imp, r.why)
				}
			}
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "go.etcd.io/bbolt") && !under(p.ImportPath, "edge/store") {
				t.Errorf("%s imports %s: only edge/store may use bbolt", p.ImportPath, imp)
			}
		}
		if p.Name == "sync" {
			t.Errorf("%s is named sync: it would shadow the standard library", p.ImportPath)
		}
	}
	if checked < 8 {
		t.Errorf("only %d packages were checked: the rules match nothing", checked)
	}
}

// The rules catch a violation (a rule that can never fail proves nothing).
func TestRulesBite(t *testing.T) {
	for _, c := range []struct{ from, imp string }{
		{"device", mod + "/edge/store"},
		{"sync", mod + "/device/mqtt"},
		{"sync", mod + "/edge/rollup"},
		{"sync", mod + "/edge/tagging"},
		{"edge", mod + "/sync/outbox"},
		{"firmware-proto", mod + "/device"},
	} {
		bit := false
		for _, r := range rules() {
			if r.from == c.from && r.bad(c.imp) {
				bit = true
			}
		}
		if !bit {
			t.Errorf("no rule stops %s importing %s", c.from, c.imp)
		}
	}
	for _, r := range rules() {
		if r.from == "sync" && r.bad(mod+"/device") {
			t.Error("sync may use the device vocabulary")
		}
	}
}
