package app

import (
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/auth0"
	"github.com/vigilhq/vigil/internal/importer/cloudtrail"
	"github.com/vigilhq/vigil/internal/importer/github"
	"github.com/vigilhq/vigil/internal/importer/gws"
	"github.com/vigilhq/vigil/internal/importer/okta"
)

// Importers returns the vendor importers POST /v1/import/{format} and
// `vigil import` offer, by format name.
func Importers() map[string]importer.Decoder {
	return map[string]importer.Decoder{
		okta.Format:       okta.Decode,
		auth0.Format:      auth0.Decode,
		gws.Format:        gws.Decode,
		github.Format:     github.Decode,
		cloudtrail.Format: cloudtrail.Decode,
	}
}
