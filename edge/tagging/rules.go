package tagging

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/hearth-iot/hearth/device"
)

// Consent categories a rule can belong to. A tag is computed only when the household
// consented to its category (sync filters what leaves; the engine skips sensitive tags
// without consent so they are never even computed).
const (
	ConsentUsage     = "usage"
	ConsentSensitive = "sensitive"
)

// MaxWindow is the longest window a rule may look back: the rollups the engine keeps
// and loads per evaluation (one Day per device, signal and date) are bounded by it.
const MaxWindow = 366 * 24 * time.Hour

// Days is a duration written in days ("28d") or as a Go duration ("36h").
type Days time.Duration

// UnmarshalYAML accepts "28d", "12h", "90m".
func (d *Days) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if v, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("line %d: %q is not a number of days", n.Line, s)
		}
		*d = Days(time.Duration(f * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 28d, 36h)", n.Line, s)
	}
	*d = Days(v)
	return nil
}

// Rule is one tag definition from tags.yaml.
type Rule struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Kinds       []device.Kind `yaml:"kinds"`    // the rule applies when the home has any of these
	Window      Days          `yaml:"window"`   // how far back the score looks
	MinDays     int           `yaml:"min_days"` // days with data from Kinds before the tag may be active
	Score       string        `yaml:"score"`    // expression in [0,1] (clamped)
	// Confidence is an expression in [0,1] (clamped): how much evidence backed the
	// score. Default: the share of the window's dates with data from Kinds.
	Confidence string `yaml:"confidence"`
	// MinConfidence: below it the tag is scored but never newly active (status
	// uncertain). Default 0.
	MinConfidence float64 `yaml:"min_confidence"`
	// Signals the rule reads. When the window holds none of them from Kinds, the tag
	// has no data to rest on: status no_data, score 0, never active. Default: any.
	Signals    []device.Signal   `yaml:"signals"`
	Evidence   map[string]string `yaml:"evidence"`   // named expressions reported beside the score
	Activate   float64           `yaml:"activate"`   // score at or above which the tag turns active
	Deactivate float64           `yaml:"deactivate"` // score below which an active tag turns inactive (hysteresis)
	Expiry     Days              `yaml:"expiry"`     // an active tag not confirmed for this long expires
	Consent    string            `yaml:"consent"`    // usage | sensitive

	line       int
	score      *vm.Program
	confidence *vm.Program
	evidence   map[string]*vm.Program
	evNames    []string
}

// Line is where the rule starts in its file.
func (r *Rule) Line() int { return r.line }

// RuleSet is a validated, compiled set of rules.
type RuleSet struct {
	Rules  []*Rule
	Source string // file name or "embedded"
}

type rulesFile struct {
	Tags []yaml.Node `yaml:"tags"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)

// ErrRules wraps every error in a rules file.
var ErrRules = errors.New("bad tag rules")

// ParseRules decodes and compiles a rules file. Every error names the rule and its
// line; all errors are reported together.
func ParseRules(src []byte, name string) (*RuleSet, error) {
	var f rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrRules, name, err)
	}
	var errs []error
	rs := &RuleSet{Source: name}
	seen := map[string]int{}
	for i := range f.Tags {
		n := &f.Tags[i]
		r := &Rule{line: n.Line}
		if err := n.Decode(r); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: rule %d: %v", name, n.Line, i+1, err))
			continue
		}
		if err := r.compile(); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: %v", name, n.Line, r.Name, err))
			continue
		}
		if prev, ok := seen[r.Name]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: rule %q: already defined at line %d", name, n.Line, r.Name, prev))
			continue
		}
		seen[r.Name] = n.Line
		rs.Rules = append(rs.Rules, r)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRules, errors.Join(errs...))
	}
	return rs, nil
}

func (r *Rule) compile() error {
	var problems []string
	if !nameRE.MatchString(r.Name) {
		problems = append(problems, fmt.Sprintf("name %q must be dotted lower-case words, e.g. habit.late_night_kitchen", r.Name))
	}
	if len(r.Kinds) == 0 {
		problems = append(problems, "kinds: at least one device kind")
	}
	for _, k := range r.Kinds {
		if err := k.Check(); err != nil {
			problems = append(problems, "kinds: "+err.Error())
		}
	}
	if r.Window <= 0 {
		problems = append(problems, "window: must be positive, e.g. 28d")
	}
	if time.Duration(r.Window) > MaxWindow {
		problems = append(problems, fmt.Sprintf("window: %v is longer than the rollup retention of %d days", time.Duration(r.Window), int(MaxWindow.Hours()/24)))
	}
	if r.MinDays < 0 || time.Duration(r.MinDays)*24*time.Hour > time.Duration(r.Window) {
		problems = append(problems, fmt.Sprintf("min_days: %d must be between 0 and the window", r.MinDays))
	}
	if r.Activate <= 0 || r.Activate > 1 {
		problems = append(problems, fmt.Sprintf("activate: %v must be in (0,1]", r.Activate))
	}
	if r.Deactivate == 0 {
		r.Deactivate = r.Activate
	}
	if r.Deactivate < 0 || r.Deactivate > r.Activate {
		problems = append(problems, fmt.Sprintf("deactivate: %v must be in [0, activate]", r.Deactivate))
	}
	if r.Expiry < 0 {
		problems = append(problems, "expiry: must not be negative")
	}
	if r.Expiry == 0 {
		r.Expiry = Days(7 * 24 * time.Hour)
	}
	switch r.Consent {
	case ConsentUsage, ConsentSensitive:
	case "":
		problems = append(problems, "consent: required (usage or sensitive)")
	default:
		problems = append(problems, fmt.Sprintf("consent: %q is not usage or sensitive", r.Consent))
	}
	if strings.TrimSpace(r.Score) == "" {
		problems = append(problems, "score: an expression is required")
	} else if p, err := compileExpr(r.Score); err != nil {
		problems = append(problems, fmt.Sprintf("score: %v", oneLine(err)))
	} else {
		r.score = p
	}
	for _, sg := range r.Signals {
		if !sg.Valid() {
			problems = append(problems, fmt.Sprintf("signals: unknown signal %q", sg))
		}
	}
	if r.MinConfidence < 0 || r.MinConfidence > 1 {
		problems = append(problems, fmt.Sprintf("min_confidence: %v must be in [0,1]", r.MinConfidence))
	}
	if strings.TrimSpace(r.Confidence) != "" {
		if p, err := compileExpr(r.Confidence); err != nil {
			problems = append(problems, fmt.Sprintf("confidence: %v", oneLine(err)))
		} else {
			r.confidence = p
		}
	}
	r.evidence = map[string]*vm.Program{}
	for k, src := range r.Evidence {
		p, err := compileExpr(src)
		if err != nil {
			problems = append(problems, fmt.Sprintf("evidence %s: %v", k, oneLine(err)))
			continue
		}
		r.evidence[k] = p
		r.evNames = append(r.evNames, k)
	}
	sort.Strings(r.evNames)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func compileExpr(src string) (*vm.Program, error) {
	p, err := expr.Compile(src, expr.Env(envTemplate()), expr.AsFloat64(), expr.MaxNodes(500))
	if err != nil {
		return nil, err
	}
	g := &guard{env: envTemplate()}
	node := p.Node()
	ast.Walk(&node, g)
	if g.err != nil {
		return nil, g.err
	}
	return p, nil
}

// mathFuncs are expr's built-in functions a rule may call besides the rule language's
// own (env.go): all of them run in time proportional to their arguments.
var mathFuncs = map[string]bool{"abs": true, "ceil": true, "floor": true, "round": true, "max": true, "min": true, "int": true, "float": true}

// guard refuses what could make one evaluation take unbounded time or memory: a
// rule's evaluation must stay cheap on a hub whatever the rules file says. Loops
// (map, filter, reduce, count, sum, ranges), variables, closures, collections and
// string arithmetic (a chain of lets doubling a string reached 335 MB) are not part
// of the rule language.
type guard struct {
	env map[string]any
	err error
}

func (g *guard) Visit(n *ast.Node) {
	if g.err != nil {
		return
	}
	refuse := func(what string) {
		g.err = fmt.Errorf("%s is not allowed in tag rules (only arithmetic, comparisons and the rule functions)", what)
	}
	switch x := (*n).(type) {
	case *ast.BuiltinNode:
		if !mathFuncs[x.Name] {
			refuse(x.Name + "(…)")
		}
	case *ast.PredicateNode, *ast.PointerNode:
		refuse("a predicate (#, {…})")
	case *ast.VariableDeclaratorNode:
		refuse("let")
	case *ast.SequenceNode:
		refuse("a sequence (;)")
	case *ast.ArrayNode, *ast.MapNode, *ast.SliceNode:
		refuse("a collection")
	case *ast.MemberNode, *ast.ChainNode:
		refuse("member access")
	case *ast.BinaryNode:
		if x.Operator == ".." {
			refuse("a range")
		} else if t := x.Type(); t != nil && t.Kind() == reflect.String {
			refuse("string arithmetic")
		}
	case *ast.CallNode:
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok {
			refuse("an indirect call")
			return
		}
		if _, ours := g.env[id.Value]; !ours && !mathFuncs[id.Value] {
			refuse(id.Value + "(…)")
		}
	}
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
