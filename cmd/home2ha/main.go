// Command home2ha converts a recorded home (a manifest in testdata/homes: Kasteren
// house A, ARAS houses A and B, ...) to Home Assistant's history CSV export
// (entity_id,state,last_changed), and writes the matching `hearth replay` mapping.
// The dataset stays where it is (none has a licence to redistribute): the converter
// and the manifest, not their output, are kept in the project.
//
//	home2ha -home testdata/homes/aras-houseA.yaml -out houseA.csv [-mapping houseA-mapping.yaml]
//	hearth replay --config houseA-mapping.yaml --input houseA.csv
//
// Each state change of a sensor becomes one row, "on" or "off", with a UTC time
// and a Z as Home Assistant exports them (edge/tagging/dataset describes each format).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hearth-iot/hearth/edge/tagging/dataset"
)

func main() {
	home := flag.String("home", "testdata/homes/kasteren-houseA.yaml", "the home's manifest")
	out := flag.String("out", "", "HA CSV to write (default stdout)")
	mapping := flag.String("mapping", "", "also write the replay mapping (YAML) here")
	flag.Parse()
	if err := run(*home, *out, *mapping, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "home2ha:", err)
		os.Exit(1)
	}
}

func run(home, out, mapping string, stdout, stderr io.Writer) (err error) {
	m, err := dataset.LoadManifest(home)
	if err != nil {
		return err
	}
	w := stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	n, err := dataset.WriteHACSV(m.Convert(), m.Source(), w)
	if err != nil {
		return fmt.Errorf("%s: %w", m.DataPath, err)
	}
	fmt.Fprintf(stderr, "home2ha: %s: %d rows\n", m.Name, n)
	if mapping == "" {
		return nil
	}
	b, err := m.ReplayMapping()
	if err != nil {
		return err
	}
	return os.WriteFile(mapping, b, 0o644)
}
