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
// Runner evaluates parsed queries against any store that implements
// audit.EventScanner, the way PromQL's engine reads storage.Querier: it
// pushes the scope, time range, filter tree, the fields it reads, order
// and limit down to the store's scan, lets a store that implements
// audit.EventGrouper count groups natively, and evaluates in Go whatever
// the store did not decide — filter terms, stats, sort, head and fields.
// No store imports this package, so every backend answers a query the
// same way. The language, and what runs where, is documented in
// docs/query-language.md.
package query
