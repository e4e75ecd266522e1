package audit

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. A client branches on these, so the list is short and stable;
// the HTTP layer maps each to one status in a single table.
const (
	EINVALID         = "invalid"
	ENOTFOUND        = "not_found"
	ECONFLICT        = "conflict"
	EUNAUTHENTICATED = "unauthenticated"
	EFORBIDDEN       = "forbidden"
	ERATELIMITED     = "rate_limited"
	ETOOLARGE        = "too_large"
	EUNAVAILABLE     = "unavailable"
	EINTERNAL        = "internal"
)

// Error is the domain error. Message is safe to show to the caller; Err is
// the underlying cause, kept for logs and errors.Is/As, never shown. Field,
// when set, is the dotted path of the offending input field
// ("actor.id", "metadata.factor"). Problems, when the input had more than
// one thing wrong, lists them all; Field and Message then name the first,
// and Message joins every problem's message.
type Error struct {
	Code     string
	Field    string
	Message  string
	Err      error
	Problems []Problem
}

// Problem is one thing wrong with an input, at a field path.
type Problem struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Invalid returns nil for no problems, else an EINVALID *Error carrying
// them all: Field is the first problem's, Message every message joined by
// "; ".
func Invalid(problems []Problem) error {
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return &Error{Code: EINVALID, Field: problems[0].Field, Message: problems[0].Message}
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Message
	}
	return &Error{Code: EINVALID, Field: problems[0].Field, Message: strings.Join(msgs, "; "), Problems: problems}
}

// ErrorProblems returns every problem of the first *Error in err's chain:
// its Problems, or the one its Field and Message describe.
func ErrorProblems(err error) []Problem {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	if len(e.Problems) > 0 {
		return e.Problems
	}
	return []Problem{{Field: e.Field, Message: e.Message}}
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return e.Message + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	default:
		return e.Message
	}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID *Error naming the offending field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL
// for any other non-nil error, or "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of the first *Error in err's
// chain, or a generic text for any other error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the offending field of the first *Error in err's chain.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
