package eval

import (
	"fmt"
	"math"
	"testing"

	"github.com/hearth-iot/hearth/configs"
	"github.com/hearth-iot/hearth/edge/tagging"
)

func TestSweep(t *testing.T) {
	rules, _ := tagging.ParseRules(configs.Tags, "x")
	hs := Households(1, 4)
	for _, gap := range []int{10, 20, 30} {
		for _, me := range []int{3, 4, 5} {
			for _, mc := range []int{2, 3} {
				for _, tol := range []int{75, 100, 130} {
					tagging.EpisodeGap, tagging.MealMinEvents, tagging.MealMinCook, tagging.MealTolerance = gap, me, mc, tol
					res, err := Run(hs, rules, 2)
					if err != nil {
						t.Fatal(err)
					}
					var e [2]float64
					var n [2]float64
					for i, tag := range []string{"routine.breakfast_at_home", "routine.dinner_at_home"} {
						for _, o := range res.ByTag(tag) {
							e[i] += math.Abs(o.Score - o.TruthVal)
							n[i]++
						}
					}
					fmt.Printf("gap %d minev %d mincook %d tol %d: breakfast MAE %.3f dinner MAE %.3f\n", gap, me, mc, tol, e[0]/n[0], e[1]/n[1])
				}
			}
		}
	}
}
