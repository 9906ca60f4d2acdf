package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The shipped configurations are configs/hearth.yaml — every key documented at its
// default — with the few values that differ where the release runs; each change is a
// line of the documented file, so every comment stays true.

// containerOverrides: the store in the /data volume; the broker and the admin API on
// every interface of the container's own network (the host decides what to publish).
var containerOverrides = [][2]string{
	{"data_dir", imageData},
	{"broker.listen", "0.0.0.0:1883"},
	{"admin.listen", "0.0.0.0:9880"},
}

// packageOverrides: a real household, under systemd: the store in StateDirectory, no
// simulated household, no terminal report in the journal.
var packageOverrides = [][2]string{
	{"data_dir", "/var/lib/hearth"},
	{"sim.enabled", "false"},
	{"report.interval", "0s"},
}

func containerConfig(root string) ([]byte, error) {
	return derivedConfig(root, "# The container image's configuration (tools/release): /data is the store's volume,\n# the listeners on the container's own interfaces.\n", containerOverrides)
}

func packageConfig(root string) ([]byte, error) {
	return derivedConfig(root, "# The Debian package's configuration (tools/release): the store in /var/lib/hearth,\n# no simulated household. Edit it, then `systemctl restart hearth`.\n", packageOverrides)
}

func derivedConfig(root, header string, overrides [][2]string) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, "configs", "hearth.yaml"))
	if err != nil {
		return nil, err
	}
	out := src
	for _, o := range overrides {
		if out, err = setKey(out, o[0], o[1]); err != nil {
			return nil, fmt.Errorf("configs/hearth.yaml: %w", err)
		}
	}
	return append([]byte(header), out...), nil
}

// setKey sets the value of key ("section.name" or a top-level "name") on its line in a
// YAML document laid out as configs/hearth.yaml is (two-space indents), keeping the
// line's comment. A key that is not found is an error: the documented file moved.
func setKey(doc []byte, key, value string) ([]byte, error) {
	section, name, nested := strings.Cut(key, ".")
	if !nested {
		section, name = "", key
	}
	lines := bytes.SplitAfter(doc, []byte("\n"))
	in := section == ""
	indent := ""
	if nested {
		indent = "  "
	}
	re := regexp.MustCompile(`^` + indent + regexp.QuoteMeta(name) + `:(\s*)([^#\n]*?)(\s*#.*)?(\n?)$`)
	for i, l := range lines {
		if nested && bytes.HasPrefix(l, []byte(section+":")) {
			in = true
			continue
		}
		if nested && in && len(l) > 0 && l[0] != ' ' && l[0] != '#' && l[0] != '\n' {
			break // the next top-level key: not in this section
		}
		if !in {
			continue
		}
		if m := re.FindSubmatch(l); m != nil {
			sp := string(m[1])
			if sp == "" {
				sp = " "
			}
			lines[i] = []byte(indent + name + ":" + sp + value + string(m[3]) + string(m[4]))
			return bytes.Join(lines, nil), nil
		}
	}
	return nil, fmt.Errorf("key %s not found", key)
}
