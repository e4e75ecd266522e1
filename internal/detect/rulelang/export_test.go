package rulelang

// NativeBool evaluates x natively; handled is false when the expression or
// a value is outside the native subset (the CEL program decides then).
func (x *Expr) NativeBool(vs Vars) (b bool, failed, handled bool) {
	if x.native == nil {
		return false, false, false
	}
	v := x.native(vs)
	switch v.k {
	case vUnsupported:
		return false, false, false
	case vErr:
		return false, true, true
	case vBool:
		return v.b, false, true
	}
	return false, true, true
}

// CELBool evaluates x with cel-go only.
func (x *Expr) CELBool(act Activation) (bool, error) { return x.celBool(act) }

// CELString evaluates x with cel-go only.
func (x *Expr) CELString(act Activation) string { return x.celString(act) }

// IsNative reports whether x compiled to the native subset.
func (x *Expr) IsNative() bool { return x.native != nil }

// StaticActions exposes the actions derived for x (nil: any).
func (x *Expr) StaticActions() []string { return x.actions }
