// Package importer holds what every vendor importer shares: splitting an
// input (NDJSON or a top-level JSON array) into records with their line
// numbers, deriving idempotent event ids from vendor ids, naming custom
// actions in a vendor's namespace, and keeping a bounded copy of the raw
// record in metadata. Each vendor's decoder lives in a subpackage
// (importer/okta, importer/auth0, …) and turns one record into one
// audit.Event. Imports: audit and the standard library only.
package importer
