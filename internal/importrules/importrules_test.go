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
			return under(imp, "cmd") || (under(imp, "device") && imp != mod+"/device")
		}, "sync reaches device data only through the store"},
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
