package eval

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/edge/tagging/replay"
)

// HomeResult is a real home's meal scores against its activity labels.
type HomeResult struct {
	Dates                  int     // dates of the labelled period
	BreakfastTruth         float64 // share of those dates with a labelled breakfast
	DinnerTruth            float64
	BreakfastScore         float64 // the agent's routine.breakfast_at_home score
	DinnerScore            float64
	BreakfastEv, DinnerEv  map[string]float64
	Readings, ProblemCount int
}

// Kasteren replays Kasteren house A (dir) converted to HA CSV through the agent's
// path and compares its meal tags with the labels.
func Kasteren(dir string, rules *tagging.RuleSet) (*HomeResult, error) {
	var csv bytes.Buffer
	if _, err := replay.KasterenToHACSV(dir, &csv); err != nil {
		return nil, err
	}
	m, err := replay.ParseMapping([]byte(replay.KasterenMapping), "kasteren mapping")
	if err != nil {
		return nil, err
	}
	in, err := replay.ReadHACSV(&csv, m)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hearth-eval-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	p, err := replay.Open(tmp, replay.Options{Location: m.Location, Rules: rules})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for _, r := range in.Readings {
		if err := p.Add(r); err != nil {
			return nil, err
		}
	}
	tags, err := p.Finish()
	if err != nil {
		return nil, err
	}
	dates, br, di, err := replay.KasterenTruth(dir)
	if err != nil {
		return nil, err
	}
	res := &HomeResult{Dates: len(dates), Readings: len(in.Readings), ProblemCount: len(in.Problems)}
	for _, d := range dates {
		res.BreakfastTruth += b2f(br[d]) / float64(len(dates))
		res.DinnerTruth += b2f(di[d]) / float64(len(dates))
	}
	for _, t := range tags {
		switch t.Name {
		case "routine.breakfast_at_home":
			res.BreakfastScore, res.BreakfastEv = t.Score, t.Evidence
		case "routine.dinner_at_home":
			res.DinnerScore, res.DinnerEv = t.Score, t.Evidence
		}
	}
	return res, nil
}

// PrintKasteren prints house A's meal scores against the label truth.
func PrintKasteren(w io.Writer, dir string, rules *tagging.RuleSet) error {
	r, err := Kasteren(dir, rules)
	if err != nil {
		return fmt.Errorf("kasteren house A: %w", err)
	}
	fmt.Fprintf(w, "Kasteren house A (%s): %d readings, %d labelled dates\n", dir, r.Readings, r.Dates)
	fmt.Fprintf(w, "%-28s %7s %7s %7s %s\n", "tag", "score", "truth", "error", "evidence")
	line := func(name string, s, t float64, ev map[string]float64) {
		verdict := "within 0.10"
		if d := s - t; d > 0.10 || d < -0.10 {
			verdict = "MISSES the 0.10 target"
		}
		fmt.Fprintf(w, "%-28s %7.3f %7.3f %+7.3f %v  %s\n", name, s, t, s-t, ev, verdict)
	}
	line("routine.breakfast_at_home", r.BreakfastScore, r.BreakfastTruth, r.BreakfastEv)
	line("routine.dinner_at_home", r.DinnerScore, r.DinnerTruth, r.DinnerEv)
	return nil
}
