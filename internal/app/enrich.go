package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/enrich"
	"github.com/vigilhq/vigil/internal/enrich/geoip"
	"github.com/vigilhq/vigil/internal/enrich/iprep"
	"github.com/vigilhq/vigil/internal/enrich/useragent"
	"github.com/vigilhq/vigil/internal/httpapi"
)

// Enrichment is the built enrichment pipeline with its resources.
type Enrichment struct {
	Pipeline *enrich.Pipeline
	closers  []func() error
}

// Close stops the enrichers' file watchers.
func (e *Enrichment) Close() error {
	var first error
	for _, c := range e.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// BuildEnrichment builds the enrichment pipeline from configuration: the
// network enricher (address scope, ASN, IP lists), geo (with client-supplied
// location as the fallback) and the user-agent parser. Missing or broken
// files never fail it; they are reported by Status.
func BuildEnrichment(c config.Enrich, log *slog.Logger, reg prometheus.Registerer) (*Enrichment, error) {
	out := &Enrichment{}
	asn := c.ASNDatabases()
	var lists []iprep.List
	for _, l := range c.Lists {
		kind := l.Kind
		if kind == "custom" {
			kind = iprep.KindOther
		}
		lists = append(lists, iprep.List{Name: l.Name, Kind: kind, Paths: []string{l.Path}})
	}
	network, err := iprep.New(iprep.Options{ASN: asn, Lists: lists, ReloadInterval: c.ReloadInterval,
		CacheSize: c.CacheSize, Logger: log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("enrich: %w", err)
	}
	out.closers = append(out.closers, network.Close)
	enrichers := []audit.Enricher{network}
	if cities := c.CityDatabases(); len(cities) > 0 {
		geo, err := geoip.New(geoip.Options{Paths: cities, ReloadInterval: c.ReloadInterval,
			CacheSize: c.CacheSize, Logger: log, Registerer: reg})
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("enrich: %w", err)
		}
		out.closers = append(out.closers, geo.Close)
		enrichers = append(enrichers, geo)
	} else {
		enrichers = append(enrichers, clientGeo{})
	}
	ua, err := useragent.New(useragent.Options{CacheSize: c.CacheSize, Registerer: reg})
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("enrich: %w", err)
	}
	enrichers = append(enrichers, ua)
	if out.Pipeline, err = enrich.New(enrich.Options{Enrichers: enrichers, Budget: c.Budget, Logger: log, Registerer: reg}); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// clientGeo fills geo from the event's client-supplied location when no
// GeoIP database is configured.
type clientGeo struct{}

func (clientGeo) Name() string { return "client-geo" }

func (clientGeo) Enrich(_ context.Context, e *audit.Event) error {
	g := e.Context.Geo
	if g == nil || e.Enrichment.Geo != nil {
		return nil
	}
	out := &audit.Geo{Country: g.Country, Region: g.Region, City: g.City, Source: "client"}
	if g.Latitude != nil && g.Longitude != nil {
		out.Latitude, out.Longitude, out.HasLocation = *g.Latitude, *g.Longitude, true
	}
	e.Enrichment.Geo = out
	return nil
}

func (a *App) buildEnrichment(c config.Enrich) (audit.Enricher, []httpapi.ReadyCheck, error) {
	e, err := BuildEnrichment(c, a.log, a.registry)
	if err != nil {
		return nil, nil, err
	}
	a.closers = append(a.closers, e.Close)
	ready := httpapi.ReadyCheck{Name: "enrichment", Info: func() any { return e.Pipeline.Status() }}
	return e.Pipeline, []httpapi.ReadyCheck{ready}, nil
}

// DescribeEnrichment says which enrichment sources a configuration loads.
func DescribeEnrichment(c config.Config) []string {
	e, err := BuildEnrichment(c.Enrich, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return []string{"enrichment: " + err.Error()}
	}
	defer e.Close()
	var out []string
	for _, s := range e.Pipeline.Status() {
		state := "loaded"
		if !s.Loaded {
			state = "NOT LOADED"
		}
		line := fmt.Sprintf("enrichment %s %s: %s, %s, %d entries, %d bytes", s.Source, s.Path, state, s.Kind, s.Entries, s.Size)
		if !s.BuildTime.IsZero() {
			line += ", built " + s.BuildTime.Format("2006-01-02")
		}
		if s.LastError != "" {
			line += ", error: " + s.LastError
		}
		out = append(out, line)
	}
	return out
}
