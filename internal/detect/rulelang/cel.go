package rulelang

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
)

// Activation resolves the variables of a CEL expression. The engine passes
// its own implementation that reads the current event lazily, so building an
// activation costs nothing until an expression asks for a name.
type Activation = interpreter.Activation

// Variables lists every name a rule expression may use, with its CEL type
// name. Event fields are read-only views of the enriched audit.Event; the
// rest are facts the engine computes (risk, flags, allowlist, tenant
// statistics) and, in conditions, the aggregate of the rule's window.
var eventVars = []struct {
	name string
	typ  *cel.Type
}{
	{"event.id", cel.StringType},
	{"event.tenant", cel.StringType},
	{"event.action", cel.StringType},
	{"event.outcome", cel.StringType},
	{"event.reason", cel.StringType},
	{"event.hour", cel.IntType},
	{"event.weekday", cel.IntType},
	{"event.actor.id", cel.StringType},
	{"event.actor.type", cel.StringType},
	{"event.actor.email", cel.StringType},
	{"event.target.id", cel.StringType},
	{"event.target.type", cel.StringType},
	{"event.ctx.ip", cel.StringType},
	{"event.ctx.user_agent", cel.StringType},
	{"event.ctx.session_id", cel.StringType},
	{"event.ctx.auth_method", cel.StringType},
	{"event.ctx.device_id", cel.StringType},
	{"event.geo.country", cel.StringType},
	{"event.geo.region", cel.StringType},
	{"event.geo.city", cel.StringType},
	{"event.geo.has_location", cel.BoolType},
	{"event.geo.accuracy_km", cel.IntType},
	{"event.net.scope", cel.StringType},
	{"event.net.asn", cel.IntType},
	{"event.net.as_org", cel.StringType},
	{"event.net.tor", cel.BoolType},
	{"event.net.datacenter", cel.BoolType},
	{"event.net.vpn", cel.BoolType},
	{"event.net.lists", cel.ListType(cel.StringType)},
	{"event.ua.class", cel.StringType},
	{"event.ua.browser", cel.StringType},
	{"event.ua.os", cel.StringType},
	{"event.ua.device", cel.StringType},
	{"event.metadata", cel.MapType(cel.StringType, cel.DynType)},
	{"risk.score", cel.IntType},
	{"risk.reasons", cel.ListType(cel.StringType)},
	{"flags", cel.ListType(cel.StringType)},
	{"allowlisted", cel.BoolType},
	{"tenant.logins", cel.IntType},
	{"tenant.device_ratio", cel.DoubleType},
	{"params", cel.MapType(cel.StringType, cel.DynType)},
}

// aggVars are available only in a rule's condition and escalations: the
// aggregate of the rule's window for the event's group key.
var aggVars = []struct {
	name string
	typ  *cel.Type
}{
	{"count", cel.IntType},         // events in the window
	{"distinct", cel.IntType},      // distinct values (distinct kind)
	{"matched", cel.IntType},       // events for which count_if held
	{"max_per_value", cel.IntType}, // most events of one distinct value
	{"baseline", cel.DoubleType},   // trailing per-window baseline of count (threshold with baseline)
	{"baseline_matched", cel.DoubleType},
	{"max_risk", cel.IntType}, // highest login risk among the window's events
	{"steps", cel.IntType},    // distinct steps seen (sequence kind)
	{"new", cel.ListType(cel.StringType)},
	{"probability", cel.DoubleType}, // rare_time: smoothed probability of the hour
	{"speed_kmh", cel.DoubleType},   // travel
	{"distance_km", cel.DoubleType}, // travel
}

// VarNames returns the names usable in filters (event and engine facts).
func VarNames() []string {
	out := make([]string, 0, len(eventVars))
	for _, v := range eventVars {
		out = append(out, v.name)
	}
	return out
}

// AggVarNames returns the extra names usable in conditions and escalations.
func AggVarNames() []string {
	out := make([]string, 0, len(aggVars))
	for _, v := range aggVars {
		out = append(out, v.name)
	}
	return out
}

// envs caches the two CEL environments; building one takes milliseconds and
// they are immutable, so every parse shares them. Not a mutable global in the
// STYLE sense: it is computed once and never changes.
type envs struct {
	once      sync.Once
	filter    *cel.Env
	condition *cel.Env
	err       error
}

func newEnvs() *envs { return &envs{} }

func (e *envs) get() (*cel.Env, *cel.Env, error) {
	e.once.Do(func() {
		base := []cel.EnvOption{cel.CrossTypeNumericComparisons(true), cel.DefaultUTCTimeZone(true)}
		fopts := append([]cel.EnvOption{}, base...)
		for _, v := range eventVars {
			fopts = append(fopts, cel.Variable(v.name, v.typ))
		}
		e.filter, e.err = cel.NewEnv(fopts...)
		if e.err != nil {
			return
		}
		copts := []cel.EnvOption{}
		for _, v := range aggVars {
			copts = append(copts, cel.Variable(v.name, v.typ))
		}
		e.condition, e.err = e.filter.Extend(copts...)
	})
	return e.filter, e.condition, e.err
}

// Expr is a compiled CEL expression. The zero Expr (no source) is "absent":
// Bool returns the supplied default.
type Expr struct {
	Source string
	prg    cel.Program
	// native runs the expression without cel-go when it is in the native
	// subset (see native.go); nil otherwise.
	native node
	// actions are the only actions the expression can be true for, when
	// that follows statically (see actionsOf); nil: any.
	actions []string
}

// Present reports whether the expression was given.
func (x *Expr) Present() bool { return x != nil && x.prg != nil }

// Bool evaluates a boolean expression. An evaluation error (a missing
// metadata key, say) counts as false, which is what a filter should do with
// an event that lacks the field; the error is returned for metrics.
func (x *Expr) Bool(act Activation) (bool, error) {
	if !x.Present() {
		return true, nil
	}
	if x.native != nil {
		if vs, ok := act.(Vars); ok {
			switch v := x.native(vs); v.k {
			case vBool:
				return v.b, nil
			case vErr:
				return false, errEval
			}
		}
	}
	return x.celBool(act)
}

// errEval is the error of a failed native evaluation (a missing metadata
// key, a type mismatch): the expression counts as false, as with CEL.
var errEval = errors.New("expression evaluation failed")

// celBool evaluates with cel-go.
func (x *Expr) celBool(act Activation) (bool, error) {
	v, _, err := x.prg.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression %q gave %s, not bool", x.Source, v.Type().TypeName())
	}
	return bool(b), nil
}

// String evaluates an expression to a string (ints, doubles and bools are
// formatted); errors and empty results give "".
func (x *Expr) String(act Activation) string {
	if !x.Present() {
		return ""
	}
	if x.native != nil {
		if vs, ok := act.(Vars); ok {
			switch v := x.native(vs); v.k {
			case vString:
				return v.s
			case vInt:
				return strconv.FormatInt(v.i, 10)
			case vErr:
				return ""
			case vBool:
				return strconv.FormatBool(v.b)
			}
		}
	}
	return x.celString(act)
}

// celString evaluates with cel-go.
func (x *Expr) celString(act Activation) string {
	v, _, err := x.prg.Eval(act)
	if err != nil {
		return ""
	}
	switch v := v.(type) {
	case types.String:
		return string(v)
	case types.Int:
		return fmt.Sprint(int64(v))
	case types.Uint:
		return fmt.Sprint(uint64(v))
	case types.Double:
		return fmt.Sprint(float64(v))
	case types.Bool:
		return fmt.Sprint(bool(v))
	}
	return ""
}

// compile checks src in env and requires the given result type (nil: any
// of string/int/bool/double).
func compile(env *cel.Env, src string, want *cel.Type) (*Expr, error) {
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, iss.Err()
	}
	if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("expression must be %s, not %s", want, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	x := &Expr{Source: src, prg: prg}
	if n, err := compileNative(ast.NativeRep()); err == nil {
		x.native = n
	}
	if acts, ok := actionsOf(ast.NativeRep()); ok {
		x.actions = acts
	}
	return x, nil
}
