// Package query parses Vigil's investigation query language into an
// audit.Query plan: a filter over events (field comparisons, free text,
// AND/OR/NOT, parentheses, a time range) followed by pipe stages (stats,
// sort, head, fields).
//
//	action:auth.login.failure ip:203.0.113.0/24 | stats count() dc(actor.id) by ip | sort -count | head 20
//
// The parser is a hand-written lexer and recursive-descent parser. It
// validates the whole query against the event field set (Fields) and the
// limits below, so a plan it returns is bounded in time, size, depth,
// buckets and rows. Errors are *audit.Error with code invalid and a message
// that names the 1-based column ("unexpected ')' at column 17").
//
// The package does no I/O and compiles nothing: storage adapters compile the
// plan to parameterised SQL using the field metadata from Fields. The
// language is documented in docs/query-language.md.
package query
