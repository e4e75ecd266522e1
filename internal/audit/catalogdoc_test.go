package audit_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
)

var updateCatalogDoc = flag.Bool("update", false, "rewrite docs/catalog.md from the catalog")

const catalogDocPath = "../../docs/catalog.md"

// TestCatalogDoc keeps docs/catalog.md what the catalog in catalog.go says.
// After changing the catalog, regenerate it with
//
//	go test ./internal/audit -run TestCatalogDoc -update
func TestCatalogDoc(t *testing.T) {
	want := catalogMarkdown()
	if *updateCatalogDoc {
		if err := os.WriteFile(catalogDocPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(catalogDocPath)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./internal/audit -run TestCatalogDoc -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/catalog.md is stale: regenerate it with: go test ./internal/audit -run TestCatalogDoc -update")
	}
}

func catalogMarkdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	code := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = "`" + s + "`"
		}
		return strings.Join(out, ", ")
	}
	ns := make([]string, len(audit.CatalogNamespaces))
	for i, n := range audit.CatalogNamespaces {
		ns[i] = n + "."
	}
	p("# Event catalog\n\n")
	p("<!-- Generated from internal/audit/catalog.go by `go test ./internal/audit -run TestCatalogDoc -update`; do not edit. -->\n\n")
	p("Every event is one JSON object sent to `POST /v1/events`. Detection understands the actions of this\n")
	p("catalog; any other action is stored and searchable as a custom action.\n\n")
	p("## Actions\n\n")
	p("* The catalog owns the namespaces %s: an action there must be one of the catalog's, so a typo is\n", code(ns))
	p("  refused with a suggestion (``did you mean `auth.login.success`?``) instead of being stored where\n")
	p("  detection never sees it.\n")
	p("* `%s.` is reserved for the records Vigil writes itself (`%s`, `%s`: who read the log; `%s`: what retention deleted; `%s`: what an erasure redacted) and is refused\n", audit.ReservedNamespace, audit.ActionSearch, audit.ActionExport, audit.ActionRetentionPurged, audit.ActionErasureCompleted)
	p("  from every key.\n")
	p("* Any other well-formed action is a custom action, such as `billing.invoice.paid`: lowercase\n")
	p("  dot-separated segments of `[a-z][a-z0-9_]*`, at least two, at most %d bytes.\n\n", audit.MaxActionBytes)
	p("| action | requires (beyond `action`) | meaning |\n|---|---|---|\n")
	for _, a := range audit.CatalogActions() {
		p("| [`%s`](#%s) | %s | %s |\n", a, strings.ReplaceAll(a, ".", ""), code(audit.RequiredFields(a)), audit.CatalogDoc(a))
	}
	p("\nA missing or wrong field is refused naming its path, and every problem of an event is reported in one\n")
	p("answer ([api-errors.md](api-errors.md#every-problem-at-once)).\n\n")
	for _, a := range audit.CatalogActions() {
		p("### %s\n\n%s\n\n", a, audit.CatalogDoc(a))
		p("| field | allowed values |\n|---|---|\n")
		for _, f := range audit.RequiredFields(a) {
			vals := "any non-empty value"
			if v := audit.AllowedValues(a, f); v != nil {
				vals = code(v)
			}
			p("| `%s` | %s |\n", f, vals)
		}
		p("\n")
	}
	p("## Fields\n\n")
	p("| field | type | rules |\n|---|---|---|\n")
	for _, row := range [][3]string{
		{"id", "string", fmt.Sprintf("optional idempotency key, unique per tenant: 1–%d ASCII letters, digits, `-`, `_`, `.` or `:`, starting with a letter or digit (so `GET /v1/events/{id}` can fetch it); Vigil assigns a ULID when absent", audit.MaxIDBytes)},
		{"tenant", "string", "the key's tenant when absent; required with an operator key; 1–64 letters, digits, `-`, `_`, `.`"},
		{"time", "string", fmt.Sprintf("RFC 3339 event time; the receive time when absent; not before the year 2000 and at most %s ahead", audit.MaxFutureSkew)},
		{"action", "string", "required; see above"},
		{"outcome", "string", "`success` or `failure`; derived from a `.success`/`.failure` suffix, which it may not contradict"},
		{"reason", "string", fmt.Sprintf("at most %d bytes", audit.MaxFieldBytes)},
		{"actor.id", "string", fmt.Sprintf("who did it (for `%s`, the identifier tried); at most %d bytes", audit.ActionLoginFailure, audit.MaxFieldBytes)},
		{"actor.type", "string", fmt.Sprintf("one of %s; `user` when absent and `actor.id` is set", code(audit.ActorTypes))},
		{"actor.email, actor.name", "string", fmt.Sprintf("at most %d bytes", audit.MaxFieldBytes)},
		{"target.type, target.id, target.name", "string", fmt.Sprintf("what the action was done to; at most %d bytes each", audit.MaxFieldBytes)},
		{"context.ip", "string", "an IPv4 or IPv6 address"},
		{"context.user_agent", "string", fmt.Sprintf("at most %d bytes", audit.MaxUserAgent)},
		{"context.session_id, context.request_id, context.device_id", "string", fmt.Sprintf("at most %d bytes each", audit.MaxFieldBytes)},
		{"context.auth_method", "string", fmt.Sprintf("at most %d bytes; for `%s` one of %s", audit.MaxFieldBytes, audit.ActionLoginSuccess, code(audit.AuthMethods))},
		{"context.geo", "object", "client-supplied location (`country`, `region`, `city`, `latitude` and `longitude` together), used when no GeoIP database answers"},
		{"metadata", "object", fmt.Sprintf("free-form, at most %d bytes encoded and %d keys (nested ones included)", audit.MaxMetadataBytes, audit.MaxMetadataKeys)},
	} {
		p("| `%s` | %s | %s |\n", strings.ReplaceAll(row[0], ", ", "`, `"), row[1], row[2])
	}
	p("\nAn event is at most %d bytes encoded. Unknown fields are refused (custom data belongs in `metadata`);\n", audit.MaxEventBytes)
	p("strings must be valid UTF-8 without control characters.\n")
	return b.Bytes()
}
