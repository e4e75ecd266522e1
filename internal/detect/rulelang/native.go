package rulelang

import (
	"errors"
	"math"
	"strings"
	"unicode/utf8"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// The native evaluator runs the common subset of CEL that rules use
// (boolean logic, comparisons, membership, size, ternaries, string and
// numeric arithmetic, map field access and has()) directly on the engine's
// typed variables, without boxing values or walking cel-go's interpreter:
// a filter costs tens of nanoseconds instead of hundreds. Expressions
// outside the subset, and values it does not model (durations, timestamps,
// nested lists in metadata), run on the compiled CEL program instead, so
// the results are CEL's in every case. TestNativeMatchesCEL checks that the
// two agree on every built-in expression over random events.

// Vars gives an expression indexed access to its variables. The engine's
// activation implements it next to Activation (used by the CEL fallback).
type Vars interface {
	Activation
	// Var returns the variable with the given id (see VarID).
	Var(id int) Value
}

// VarID returns the id of a variable name (filter or aggregate), or -1.
func VarID(name string) int {
	for i, v := range eventVars {
		if v.name == name {
			return i
		}
	}
	for i, v := range aggVars {
		if v.name == name {
			return len(eventVars) + i
		}
	}
	return -1
}

// VarName returns the name of a variable id (the inverse of VarID).
func VarName(id int) string {
	if id < len(eventVars) {
		return eventVars[id].name
	}
	return aggVars[id-len(eventVars)].name
}

// NumVars is the number of variable ids.
func NumVars() int { return len(eventVars) + len(aggVars) }

// vkind is the kind of a Value.
type vkind uint8

const (
	vErr         vkind = iota // an evaluation error (counts as false)
	vUnsupported              // outside the native subset: use CEL
	vNull
	vBool
	vInt
	vUint
	vDouble
	vString
	vStrings // []string
	vInts    // []int64
	vList    // []any
	vMap     // map[string]any
)

// Value is a variable's or an intermediate result's value. The zero Value
// is an error.
type Value struct {
	k vkind
	b bool
	i int64
	f float64
	s string
	l []string // vStrings
	x any      // []int64, []any or map[string]any
}

// StringVal, IntVal, DoubleVal, BoolVal, StringsVal and MapVal make the
// values of typed variables.
func StringVal(s string) Value      { return Value{k: vString, s: s} }
func IntVal(i int64) Value          { return Value{k: vInt, i: i} }
func DoubleVal(f float64) Value     { return Value{k: vDouble, f: f} }
func BoolVal(b bool) Value          { return Value{k: vBool, b: b} }
func StringsVal(l []string) Value   { return Value{k: vStrings, l: l} }
func MapVal(m map[string]any) Value { return Value{k: vMap, x: m} }
func errVal() Value                 { return Value{} }
func unsupported() Value            { return Value{k: vUnsupported} }
func (v Value) failed() bool        { return v.k <= vUnsupported }
func (v Value) isNum() bool         { return v.k == vInt || v.k == vUint || v.k == vDouble }
func (v Value) num() float64 {
	return [...]float64{vInt: float64(v.i), vUint: float64(uint64(v.i)), vDouble: v.f}[v.k]
}

// NativeVal converts a Go value (a metadata or parameter value) to a
// Value; types the native evaluator does not model become "unsupported".
func NativeVal(x any) Value {
	switch x := x.(type) {
	case nil:
		return Value{k: vNull}
	case bool:
		return BoolVal(x)
	case string:
		return StringVal(x)
	case int:
		return IntVal(int64(x))
	case int32:
		return IntVal(int64(x))
	case int64:
		return IntVal(x)
	case uint32:
		return Value{k: vUint, i: int64(x)}
	case uint64:
		return Value{k: vUint, i: int64(x)}
	case float32:
		return DoubleVal(float64(x))
	case float64:
		return DoubleVal(x)
	case []string:
		return StringsVal(x)
	case []int64:
		return Value{k: vInts, x: x}
	case []any:
		return Value{k: vList, x: x}
	case map[string]any:
		return MapVal(x)
	}
	return unsupported()
}

// Native returns the Go value of v for CEL (the inverse of NativeVal).
func (v Value) Native() any {
	switch v.k {
	case vNull:
		return nil
	case vBool:
		return v.b
	case vInt:
		return v.i
	case vUint:
		return uint64(v.i)
	case vDouble:
		return v.f
	case vString:
		return v.s
	case vStrings:
		return v.l
	}
	return v.x
}

// lenient list access: element i of a list value as a Value.
func (v Value) listLen() int {
	if v.k == vStrings {
		return len(v.l)
	}
	switch l := v.x.(type) {
	case []int64:
		return len(l)
	case []any:
		return len(l)
	}
	return 0
}

func (v Value) elem(i int) Value {
	if v.k == vStrings {
		return StringVal(v.l[i])
	}
	switch l := v.x.(type) {
	case []int64:
		return IntVal(l[i])
	case []any:
		return NativeVal(l[i])
	}
	return errVal()
}

// eqResult is CEL's heterogeneous equality: numbers compare by value
// across int, uint and double; other kinds must match; lists compare
// element-wise. ok is false when the native evaluator cannot decide.
func equal(a, b Value) (eq bool, ok bool) {
	switch {
	case a.k == vUnsupported || b.k == vUnsupported || a.k == vMap || b.k == vMap:
		return false, false
	case a.isNum() && b.isNum():
		if a.k == b.k {
			return a.i == b.i && a.f == b.f, true
		}
		if a.k == vDouble || b.k == vDouble {
			return a.num() == b.num(), true
		}
		// int vs uint
		if a.i < 0 || b.i < 0 {
			return false, true
		}
		return a.i == b.i, true
	case a.k == vStrings || a.k == vInts || a.k == vList:
		if b.k != vStrings && b.k != vInts && b.k != vList {
			return false, true
		}
		n := a.listLen()
		if n != b.listLen() {
			return false, true
		}
		for i := 0; i < n; i++ {
			e, ok := equal(a.elem(i), b.elem(i))
			if !ok {
				return false, false
			}
			if !e {
				return false, true
			}
		}
		return true, true
	case a.k != b.k:
		return false, true
	}
	switch a.k {
	case vNull:
		return true, true
	case vBool:
		return a.b == b.b, true
	case vString:
		return a.s == b.s, true
	}
	return false, false
}

// compare orders two values: -1, 0, 1; ok is false for a type error.
func compare(a, b Value) (int, bool) {
	switch {
	case a.isNum() && b.isNum():
		if a.k == vInt && b.k == vInt || a.k == vUint && b.k == vUint {
			x, y := a.i, b.i
			if a.k == vUint {
				ux, uy := uint64(x), uint64(y)
				return cmp3(ux < uy, ux > uy), true
			}
			return cmp3(x < y, x > y), true
		}
		if a.k != vDouble && b.k != vDouble { // int vs uint
			if a.k == vInt && a.i < 0 {
				return -1, true
			}
			if b.k == vInt && b.i < 0 {
				return 1, true
			}
			ux, uy := uint64(a.i), uint64(b.i)
			return cmp3(ux < uy, ux > uy), true
		}
		x, y := a.num(), b.num()
		if math.IsNaN(x) || math.IsNaN(y) {
			return 2, true // NaN: every ordering is false
		}
		return cmp3(x < y, x > y), true
	case a.k == vString && b.k == vString:
		return strings.Compare(a.s, b.s), true
	case a.k == vBool && b.k == vBool:
		return cmp3(!a.b && b.b, a.b && !b.b), true
	}
	return 0, false
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

// node is one compiled native expression node.
type node func(Vars) Value

var errNotNative = errors.New("outside the native subset")

// compileNative translates a checked CEL AST into native nodes, or fails
// with errNotNative.
func compileNative(a *celast.AST) (node, error) {
	c := &ncomp{refs: a.ReferenceMap()}
	n := c.expr(a.Expr())
	if c.bad {
		return nil, errNotNative
	}
	return n, nil
}

type ncomp struct {
	refs   map[int64]*celast.ReferenceInfo
	bad    bool
	noFast bool
}

func (c *ncomp) fail() node {
	c.bad = true
	return nil
}

func (c *ncomp) expr(e celast.Expr) node {
	if c.bad {
		return nil
	}
	if r, ok := c.refs[e.ID()]; ok && r.Name != "" && len(r.OverloadIDs) == 0 && (e.Kind() == celast.IdentKind || e.Kind() == celast.SelectKind) {
		if r.Value != nil {
			return c.literal(r.Value)
		}
		id := VarID(r.Name)
		if id < 0 {
			return c.fail()
		}
		return func(v Vars) Value { return v.Var(id) }
	}
	switch e.Kind() {
	case celast.LiteralKind:
		return c.literal(e.AsLiteral())
	case celast.ListKind:
		return c.list(e.AsList())
	case celast.SelectKind:
		return c.sel(e.AsSelect())
	case celast.CallKind:
		return c.call(e.AsCall())
	}
	return c.fail()
}

func (c *ncomp) literal(rv any) node {
	var v Value
	switch x := rv.(type) {
	case types.Bool:
		v = BoolVal(bool(x))
	case types.Int:
		v = IntVal(int64(x))
	case types.Uint:
		v = Value{k: vUint, i: int64(x)}
	case types.Double:
		v = DoubleVal(float64(x))
	case types.String:
		v = StringVal(string(x))
	case types.Null:
		v = Value{k: vNull}
	default:
		return c.fail()
	}
	return func(Vars) Value { return v }
}

func (c *ncomp) list(l celast.ListExpr) node {
	if len(l.OptionalIndices()) > 0 {
		return c.fail()
	}
	// A list of string literals (the usual `x in [...]`) is a constant.
	var strs []string
	allStr := true
	for _, el := range l.Elements() {
		if el.Kind() != celast.LiteralKind {
			allStr = false
			break
		}
		s, ok := el.AsLiteral().(types.String)
		if !ok {
			allStr = false
			break
		}
		strs = append(strs, string(s))
	}
	if allStr {
		v := StringsVal(strs)
		return func(Vars) Value { return v }
	}
	els := make([]node, 0, l.Size())
	for _, el := range l.Elements() {
		els = append(els, c.expr(el))
	}
	return func(vs Vars) Value {
		out := make([]any, len(els))
		for i, n := range els {
			v := n(vs)
			if v.failed() {
				return v
			}
			if v.k == vUint {
				return unsupported()
			}
			out[i] = v.Native()
		}
		return Value{k: vList, x: out}
	}
}

func (c *ncomp) sel(s celast.SelectExpr) node {
	op := c.expr(s.Operand())
	field := s.FieldName()
	test := s.IsTestOnly()
	return func(vs Vars) Value {
		m := op(vs)
		if m.failed() {
			return m
		}
		if m.k != vMap {
			return unsupported()
		}
		x, ok := m.x.(map[string]any)[field]
		if test {
			return BoolVal(ok)
		}
		if !ok {
			return errVal() // no such key
		}
		return NativeVal(x)
	}
}

// plusLeaves flattens a left-nested chain of + into its operands.
func plusLeaves(e celast.Expr, out []celast.Expr) []celast.Expr {
	if e.Kind() == celast.CallKind {
		if c := e.AsCall(); c.FunctionName() == "_+_" && !c.IsMemberFunction() && len(c.Args()) == 2 {
			out = plusLeaves(c.Args()[0], out)
			return plusLeaves(c.Args()[1], out)
		}
	}
	return append(out, e)
}

// concat evaluates a chain of + at once: strings are joined with one
// allocation (a + " " + b + "/" + c allocates once, not three times);
// other values fold pairwise as CEL does.
func (c *ncomp) concat(leaves []celast.Expr) node {
	ns := make([]node, len(leaves))
	for i, l := range leaves {
		ns[i] = c.expr(l)
	}
	return func(vs Vars) Value {
		var buf [8]Value
		vals := buf[:0]
		n, allStr := 0, true
		for _, nd := range ns {
			v := nd(vs)
			if v.k == vUnsupported {
				return v
			}
			vals = append(vals, v)
		}
		for _, v := range vals {
			if v.k == vErr {
				return v
			}
			allStr = allStr && v.k == vString
			n += len(v.s)
		}
		if !allStr {
			acc := vals[0]
			for _, v := range vals[1:] {
				if acc = arith("_+_", acc, v); acc.failed() {
					return acc
				}
			}
			return acc
		}
		var b strings.Builder
		b.Grow(n)
		for _, v := range vals {
			b.WriteString(v.s)
		}
		return StringVal(b.String())
	}
}

func (c *ncomp) call(call celast.CallExpr) node {
	fn := call.FunctionName()
	args := call.Args()
	if fn == "_+_" && !call.IsMemberFunction() && len(args) == 2 {
		if leaves := plusLeaves(args[0], nil); len(leaves) > 1 {
			return c.concat(plusLeaves(args[1], leaves))
		}
	}
	if call.IsMemberFunction() {
		args = append([]celast.Expr{call.Target()}, args...)
	}
	ns := make([]node, len(args))
	for i, a := range args {
		ns[i] = c.expr(a)
	}
	if c.bad {
		return nil
	}
	if !c.noFast {
		if n := c.fast(fn, args, ns); n != nil {
			return n
		}
	}
	return c.callNodes(fn, ns)
}

// callNodes builds the generic node of fn over compiled arguments.
func (c *ncomp) callNodes(fn string, ns []node) node {
	un := func(f func(Value) Value) node {
		if len(ns) != 1 {
			return c.fail()
		}
		a := ns[0]
		return func(vs Vars) Value {
			x := a(vs)
			if x.failed() {
				return x
			}
			return f(x)
		}
	}
	bin := func(f func(Value, Value) Value) node {
		if len(ns) != 2 {
			return c.fail()
		}
		a, b := ns[0], ns[1]
		return func(vs Vars) Value {
			x := a(vs)
			if x.k == vUnsupported {
				return x
			}
			y := b(vs)
			if y.k == vUnsupported {
				return y
			}
			if x.k == vErr {
				return x
			}
			if y.k == vErr {
				return y
			}
			return f(x, y)
		}
	}
	switch fn {
	case "_&&_", "_||_":
		if len(ns) != 2 {
			return c.fail()
		}
		a, b := ns[0], ns[1]
		short := fn == "_||_" // the value that decides alone
		return func(vs Vars) Value {
			x := a(vs)
			if x.k == vUnsupported {
				return x
			}
			if x.k == vBool && x.b == short {
				return x
			}
			y := b(vs)
			if y.k == vUnsupported {
				return y
			}
			if y.k == vBool && y.b == short {
				return y
			}
			if x.k != vBool {
				if x.k == vErr {
					return x
				}
				return unsupported()
			}
			if y.k != vBool {
				if y.k == vErr {
					return y
				}
				return unsupported()
			}
			return BoolVal(!short)
		}
	case "!_":
		return un(func(x Value) Value {
			if x.k != vBool {
				return errVal()
			}
			return BoolVal(!x.b)
		})
	case "_?_:_":
		if len(ns) != 3 {
			return c.fail()
		}
		cond, a, b := ns[0], ns[1], ns[2]
		return func(vs Vars) Value {
			x := cond(vs)
			if x.failed() {
				return x
			}
			if x.k != vBool {
				return errVal()
			}
			if x.b {
				return a(vs)
			}
			return b(vs)
		}
	case "_==_", "_!=_":
		neg := fn == "_!=_"
		return bin(func(x, y Value) Value {
			eq, ok := equal(x, y)
			if !ok {
				return unsupported()
			}
			return BoolVal(eq != neg)
		})
	case "_<_", "_<=_", "_>_", "_>=_":
		return bin(func(x, y Value) Value {
			if x.k == vUnsupported || y.k == vUnsupported || x.k > vString || y.k > vString {
				return unsupported()
			}
			r, ok := compare(x, y)
			if !ok {
				return errVal() // no such overload
			}
			if r == 2 {
				return BoolVal(false)
			}
			switch fn {
			case "_<_":
				return BoolVal(r < 0)
			case "_<=_":
				return BoolVal(r <= 0)
			case "_>_":
				return BoolVal(r > 0)
			}
			return BoolVal(r >= 0)
		})
	case "@in":
		return bin(func(x, l Value) Value {
			switch l.k {
			case vStrings:
				if x.k != vString {
					if x.k == vUnsupported || x.k == vMap {
						return unsupported()
					}
					return BoolVal(false)
				}
				for _, s := range l.l {
					if s == x.s {
						return BoolVal(true)
					}
				}
				return BoolVal(false)
			case vInts, vList:
				for i := 0; i < l.listLen(); i++ {
					eq, ok := equal(x, l.elem(i))
					if !ok {
						return unsupported()
					}
					if eq {
						return BoolVal(true)
					}
				}
				return BoolVal(false)
			case vMap:
				if x.k != vString {
					return unsupported()
				}
				_, ok := l.x.(map[string]any)[x.s]
				return BoolVal(ok)
			}
			return unsupported()
		})
	case "size":
		return un(func(x Value) Value {
			switch x.k {
			case vString:
				return IntVal(int64(utf8.RuneCountInString(x.s)))
			case vStrings, vInts, vList:
				return IntVal(int64(x.listLen()))
			case vMap:
				return IntVal(int64(len(x.x.(map[string]any))))
			}
			return unsupported()
		})
	case "double":
		return un(func(x Value) Value {
			if x.isNum() {
				return DoubleVal(x.num())
			}
			return unsupported()
		})
	case "_+_", "_-_", "_*_":
		return bin(func(x, y Value) Value { return arith(fn, x, y) })
	case "contains", "startsWith", "endsWith":
		return bin(func(x, y Value) Value {
			if x.k != vString || y.k != vString {
				return unsupported()
			}
			switch fn {
			case "contains":
				return BoolVal(strings.Contains(x.s, y.s))
			case "startsWith":
				return BoolVal(strings.HasPrefix(x.s, y.s))
			}
			return BoolVal(strings.HasSuffix(x.s, y.s))
		})
	}
	return c.fail()
}

// varRef returns the variable id e refers to.
func (c *ncomp) varRef(e celast.Expr) (int, bool) {
	r, ok := c.refs[e.ID()]
	if !ok || r.Name == "" || r.Value != nil || len(r.OverloadIDs) != 0 || (e.Kind() != celast.IdentKind && e.Kind() != celast.SelectKind) {
		return -1, false
	}
	id := VarID(r.Name)
	return id, id >= 0
}

// fast returns a specialised node for the commonest shapes (a variable
// compared with a string literal, a negated variable, a variable in a list
// of string literals), or nil. Each falls back to the generic node when
// the variable's value is not the expected kind.
func (c *ncomp) fast(fn string, args []celast.Expr, generic []node) node {
	switch fn {
	case "_==_", "_!=_":
		if len(args) != 2 {
			return nil
		}
		neg := fn == "_!=_"
		for i := range 2 {
			id, ok := c.varRef(args[i])
			if !ok || args[1-i].Kind() != celast.LiteralKind {
				continue
			}
			lit, ok := args[1-i].AsLiteral().(types.String)
			if !ok {
				continue
			}
			s := string(lit)
			slow := c.generic(fn, generic)
			return func(vs Vars) Value {
				if x := vs.Var(id); x.k == vString {
					return BoolVal((x.s == s) != neg)
				}
				return slow(vs)
			}
		}
	case "!_":
		if len(args) != 1 {
			return nil
		}
		if id, ok := c.varRef(args[0]); ok {
			return func(vs Vars) Value {
				x := vs.Var(id)
				if x.k == vBool {
					return BoolVal(!x.b)
				}
				if x.failed() {
					return x
				}
				return errVal()
			}
		}
	case "@in":
		if len(args) != 2 || args[1].Kind() != celast.ListKind {
			return nil
		}
		id, ok := c.varRef(args[0])
		if !ok {
			return nil
		}
		var set []string
		for _, el := range args[1].AsList().Elements() {
			if el.Kind() != celast.LiteralKind {
				return nil
			}
			s, ok := el.AsLiteral().(types.String)
			if !ok {
				return nil
			}
			set = append(set, string(s))
		}
		slow := c.generic(fn, generic)
		return func(vs Vars) Value {
			x := vs.Var(id)
			if x.k != vString {
				return slow(vs)
			}
			for _, s := range set {
				if s == x.s {
					return BoolVal(true)
				}
			}
			return BoolVal(false)
		}
	}
	return nil
}

// generic compiles fn over already compiled argument nodes without the
// fast paths.
func (c *ncomp) generic(fn string, ns []node) node {
	saved := c.noFast
	c.noFast = true
	defer func() { c.noFast = saved }()
	return c.callNodes(fn, ns)
}

// arith is +, - and * on ints and doubles, and + on strings; int overflow
// is an error as in CEL.
func arith(fn string, x, y Value) Value {
	switch {
	case x.k == vString && y.k == vString && fn == "_+_":
		return StringVal(x.s + y.s)
	case x.k == vInt && y.k == vInt:
		a, b := x.i, y.i
		var r int64
		switch fn {
		case "_+_":
			r = a + b
			if (r > a) != (b > 0) {
				return errVal()
			}
		case "_-_":
			r = a - b
			if (r < a) != (b > 0) {
				return errVal()
			}
		default:
			if a != 0 && b != 0 {
				r = a * b
				if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
					return errVal()
				}
			}
		}
		return IntVal(r)
	case x.k == vDouble && y.k == vDouble:
		switch fn {
		case "_+_":
			return DoubleVal(x.f + y.f)
		case "_-_":
			return DoubleVal(x.f - y.f)
		}
		return DoubleVal(x.f * y.f)
	}
	return unsupported()
}

// actionsOf derives the set of actions for which a boolean expression can
// be true: `event.action == "x"` and `event.action in ["x", ...]` bound it,
// `&&` intersects, `||` unites; anything else is unbounded. ok is false
// when the set is unbounded.
func actionsOf(a *celast.AST) (acts []string, ok bool) {
	refs := a.ReferenceMap()
	isAction := func(e celast.Expr) bool {
		r, ok := refs[e.ID()]
		return ok && r.Name == "event.action" && (e.Kind() == celast.IdentKind || e.Kind() == celast.SelectKind)
	}
	var walk func(e celast.Expr) ([]string, bool)
	walk = func(e celast.Expr) ([]string, bool) {
		if e.Kind() != celast.CallKind {
			return nil, false
		}
		call := e.AsCall()
		args := call.Args()
		if call.IsMemberFunction() || len(args) != 2 {
			return nil, false
		}
		switch call.FunctionName() {
		case "_&&_":
			l, lok := walk(args[0])
			r, rok := walk(args[1])
			switch {
			case lok && rok:
				var out []string
				for _, x := range l {
					for _, y := range r {
						if x == y {
							out = append(out, x)
						}
					}
				}
				return append([]string{}, out...), true
			case lok:
				return l, true
			case rok:
				return r, true
			}
			return nil, false
		case "_||_":
			l, lok := walk(args[0])
			r, rok := walk(args[1])
			if !lok || !rok {
				return nil, false
			}
			return append(append([]string{}, l...), r...), true
		case "_==_":
			for i := range 2 {
				if isAction(args[i]) && args[1-i].Kind() == celast.LiteralKind {
					if s, ok := args[1-i].AsLiteral().(types.String); ok {
						return []string{string(s)}, true
					}
				}
			}
		case "@in":
			if isAction(args[0]) && args[1].Kind() == celast.ListKind {
				var out []string
				for _, el := range args[1].AsList().Elements() {
					if el.Kind() != celast.LiteralKind {
						return nil, false
					}
					s, ok := el.AsLiteral().(types.String)
					if !ok {
						return nil, false
					}
					out = append(out, string(s))
				}
				return out, true
			}
		}
		return nil, false
	}
	return walk(a.Expr())
}
