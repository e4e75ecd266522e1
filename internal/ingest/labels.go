package ingest

import (
	"slices"

	"github.com/vigilhq/vigil/internal/audit"
)

// Metric labels never carry client input: an unknown key or a made-up
// error code would give every request its own series on /metrics. The
// reject counter's labels come from these fixed sets.

// rejectFields are the field labels of vigil_ingest_rejects_total: every
// field path of the wire schema and of the catalog's required fields.
var rejectFields = func() map[string]bool {
	m := map[string]bool{"": true}
	for _, f := range eventFields {
		m[f] = true
	}
	for _, group := range []struct {
		prefix string
		names  []string
	}{{"actor.", actorFields[:]}, {"target.", targetFields[:]}, {"context.", contextFields[:]}, {"context.geo.", geoFields[:]}} {
		for _, f := range group.names {
			m[group.prefix+f] = true
		}
	}
	for _, a := range audit.CatalogActions() {
		for _, f := range audit.RequiredFields(a) {
			m[f] = true
		}
	}
	return m
}()

// otherField is the label of a field outside the schema (an unknown key).
const otherField = "other"

func rejectField(err error) string {
	if f := audit.ErrorField(err); rejectFields[f] {
		return f
	}
	return otherField
}

var errorCodes = []string{audit.EINVALID, audit.ENOTFOUND, audit.ECONFLICT, audit.EUNAUTHENTICATED,
	audit.EFORBIDDEN, audit.ERATELIMITED, audit.ETOOLARGE, audit.EUNAVAILABLE, audit.EINTERNAL}

func rejectCode(err error) string {
	if c := audit.ErrorCode(err); slices.Contains(errorCodes, c) {
		return c
	}
	return audit.EINTERNAL
}
