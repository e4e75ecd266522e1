package config_test

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/config"
)

func TestLimitsFile(t *testing.T) {
	c, err := config.Load("testdata/limits.good.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.Tenant.EventRate != 20000 || l.Tenant.EventBurst != 50000 || l.KeyRequestRate != 50 || l.MaxExportDuration != 2*time.Hour {
		t.Fatalf("limits = %+v", l)
	}
	def := config.Default().Limits
	if l.Tenant.RequestRate != def.Tenant.RequestRate || l.ConcurrentQueries != def.ConcurrentQueries {
		t.Fatal("unset limits must keep their defaults")
	}
	acme := l.Tenants[0].Apply(l.Tenant)
	want := l.Tenant
	want.EventRate, want.BacklogSharePercent, want.ConcurrentExports = 0, 80, 1
	if acme != want {
		t.Fatalf("acme = %+v, want %+v (omitted fields inherit the default)", acme, want)
	}
}

func TestLimitsEnv(t *testing.T) {
	env := map[string]string{"VIGIL_LIMITS_TENANT_REQUEST_RATE": "7", "VIGIL_LIMITS_MAX_EXPORT_DURATION": "90s"}
	c, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.Tenant.RequestRate != 7 || c.Limits.MaxExportDuration != 90*time.Second {
		t.Fatalf("limits = %+v", c.Limits)
	}
}
