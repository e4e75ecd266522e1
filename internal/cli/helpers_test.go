package cli_test

import (
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

func tenant(id string) audit.Tenant {
	return audit.Tenant{ID: id, RetentionDays: audit.DefaultRetentionDays, CreatedAt: time.Now().UTC()}
}
