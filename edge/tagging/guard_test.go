package tagging

import (
	"fmt"
	"strings"
	"testing"
)

// Rules that would make an evaluation take unbounded time or memory are refused at
// load, with the rule's name and line, like any other bad rule.
func TestGuardRefusesUnboundedRules(t *testing.T) {
	for _, c := range []struct{ score, want string }{
		{`let a = 1..400; reduce(a, reduce(a, #acc + 1, 0), 0) > 0 ? 1.0 : 0.0`, "not allowed"},
		{`let v0 = "xx"; let v1 = v0 + v0; len(v1) > 0 ? 1.0 : 0.0`, "not allowed"},
		{`count(1..100000, # > 5) / 100000`, "score:"}, // count is the rule function count(kind, signal)
		{`len(map(1..1000, # * 2)) / 1000.0`, "not allowed"},
		{`len(repeat("x", 1000000)) > 0 ? 1.0 : 0.0`, "repeat"},
		{`[1, 2, 3][0] / 3.0`, "not allowed"},
	} {
		src := fmt.Sprintf("tags:\n  - name: habit.bomb\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: '%s'\n    activate: 0.5\n    consent: usage\n", c.score)
		_, err := ParseRules([]byte(src), "bomb.yaml")
		if err == nil {
			t.Errorf("accepted %s", c.score)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || !strings.Contains(msg, `bomb.yaml:2: rule "habit.bomb"`) {
			t.Errorf("%s: error %q lacks %q or the rule's name and line", c.score, msg, c.want)
		}
	}
	// What the rule language is for still compiles.
	ok := "tags:\n  - name: habit.fine\n    description: x\n    kinds: [fridge]\n    window: 7d\n    score: 'clamp(max(ratio(sessions(\"fridge\", \"door\"), 10), 0.1) * 2 - abs(-0.1))'\n    activate: 0.5\n    consent: usage\n"
	if _, err := ParseRules([]byte(ok), "ok.yaml"); err != nil {
		t.Errorf("an ordinary rule was refused: %v", err)
	}
}
