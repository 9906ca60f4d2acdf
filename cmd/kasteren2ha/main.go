// Command kasteren2ha converts the sensor data of a van Kasteren (UbiComp 2008) home
// to Home Assistant's history CSV export (entity_id,state,last_changed), and writes
// the matching `hearth replay` mapping. The dataset stays where it is (it has no
// licence to redistribute): this converter, not its output, is kept in the project.
//
//	kasteren2ha -in ../shared/data/kasteren2008-houseA -out houseA.csv [-mapping houseA.yaml]
//
// Each sensor row is an interval during which the reed switch or contact fired: it
// becomes an "on" state at its start and an "off" state at its end. Times in the
// dataset are local (Europe/Amsterdam); the CSV carries UTC times with a Z, as Home
// Assistant exports them.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

func main() {
	in := flag.String("in", "../shared/data/kasteren2008-houseA", "dataset directory (kasterenSenseData.txt)")
	out := flag.String("out", "", "HA CSV to write (default stdout)")
	mapping := flag.String("mapping", "", "also write the replay mapping (YAML) here")
	flag.Parse()
	if err := run(*in, *out, *mapping); err != nil {
		fmt.Fprintln(os.Stderr, "kasteren2ha:", err)
		os.Exit(1)
	}
}

func run(in, out, mapping string) error {
	w := os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := replay.KasterenToHACSV(in, w)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "kasteren2ha: %d rows\n", n)
	if mapping != "" {
		return os.WriteFile(mapping, []byte(replay.KasterenMapping), 0o644)
	}
	return nil
}
