package app

import (
	"context"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/httpapi"
)

// detection bundles what the detection engine offers the rest of the app.
type detection struct {
	detector        audit.Detector
	scorer          httpapi.Scorer
	tuningChanged   func(ctx context.Context, tenant string)
	validateSetting httpapi.ValidateSetting
}

// buildDetection is replaced when the detection engine lands.
func (a *App) buildDetection(ctx context.Context, c config.Detect) (*detection, error) {
	return nil, nil
}
