package console

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
)

// The overview's charts are inline SVG built here, so the page needs no
// script or chart library. Every label is HTML-escaped; everything else in
// the markup is numbers.

// bar is one value of a chart.
type bar struct {
	Label string
	Value int64
	Hot   bool // part of a wave, drawn in the alert colour
}

// perMinuteChart draws failures per minute; minutes far above the typical
// minute (a credential-stuffing wave) are drawn hot.
func perMinuteChart(bars []bar, title string) template.HTML {
	const w, h, pad = 960.0, 220.0, 30.0
	var peak int64 = 1
	for _, b := range bars {
		peak = max(peak, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`, w, h, html.EscapeString(title), html.EscapeString(title))
	fmt.Fprintf(&sb, `<line class="axis" x1="%g" y1="%g" x2="%g" y2="%g"/>`, pad, h-pad, w, h-pad)
	fmt.Fprintf(&sb, `<text class="tick" x="0" y="%g">%d</text><text class="tick" x="0" y="%g">0</text>`, pad-8, peak, h-pad)
	bw := (w - pad) / float64(max(len(bars), 1))
	for i, b := range bars {
		bh := (h - 2*pad) * float64(b.Value) / float64(peak)
		cls := "bar"
		if b.Hot {
			cls = "bar hot"
		}
		fmt.Fprintf(&sb, `<rect class="%s" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s: %d</title></rect>`,
			cls, pad+float64(i)*bw, h-pad-bh, max(bw-0.5, 0.5), bh, html.EscapeString(b.Label), b.Value)
		// A label is about 40 units wide: none starts where it would be cut off.
		if len(bars) > 1 && i%max(len(bars)/6, 1) == 0 && pad+float64(i)*bw < w-44 {
			fmt.Fprintf(&sb, `<text class="tick" x="%.2f" y="%g">%s</text>`, pad+float64(i)*bw, h-8, html.EscapeString(b.Label))
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// hbarChart draws horizontal bars with labels (logins by country).
func hbarChart(bars []bar, title string) template.HTML {
	const w, row, label = 600.0, 26.0, 140.0
	h := row*float64(len(bars)) + 10
	var peak int64 = 1
	for _, b := range bars {
		peak = max(peak, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`, w, h, html.EscapeString(title), html.EscapeString(title))
	for i, b := range bars {
		y := float64(i) * row
		bw := (w - label - 70) * float64(b.Value) / float64(peak)
		fmt.Fprintf(&sb, `<text class="label" x="%g" y="%.1f" text-anchor="end">%s</text>`, label-8, y+17, html.EscapeString(b.Label))
		fmt.Fprintf(&sb, `<rect class="bar" x="%g" y="%.1f" width="%.2f" height="%g"/>`, label, y+4, max(bw, 1), row-8)
		fmt.Fprintf(&sb, `<text class="tick" x="%.2f" y="%.1f">%d</text>`, label+bw+6, y+17, b.Value)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// heatmap draws rules × days, darker for more findings.
func heatmap(rows []string, days []string, counts map[string]map[string]int, title string) template.HTML {
	const cell, label = 30.0, 190.0
	w := label + cell*float64(len(days)) + 10
	h := cell*float64(len(rows)) + 40
	peak := 1
	for _, m := range counts {
		for _, n := range m {
			peak = max(peak, n)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`, w, h, html.EscapeString(title), html.EscapeString(title))
	for i, r := range rows {
		y := float64(i) * cell
		fmt.Fprintf(&sb, `<text class="label" x="%g" y="%.1f" text-anchor="end">%s</text>`, label-8, y+20, html.EscapeString(r))
		for j, d := range days {
			n := counts[r][d]
			level := 0
			if n > 0 {
				level = 1 + 3*n/(peak+1)
			}
			fmt.Fprintf(&sb, `<rect class="heat h%d" x="%.1f" y="%.1f" width="%g" height="%g"><title>%s %s: %d</title></rect>`,
				level, label+float64(j)*cell, y+2, cell-2, cell-2, html.EscapeString(r), d, n)
		}
	}
	for j, d := range days {
		if j%2 == 0 {
			fmt.Fprintf(&sb, `<text class="tick" x="%.1f" y="%g">%s</text>`, label+float64(j)*cell, h-14, d[5:])
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// markWaves marks minutes at least four times the median minute and at
// least 10 failures: the shape of a stuffing wave.
func markWaves(bars []bar) {
	vals := make([]int64, len(bars))
	for i, b := range bars {
		vals[i] = b.Value
	}
	slices.Sort(vals)
	med := vals[len(vals)/2]
	for i := range bars {
		bars[i].Hot = bars[i].Value >= 10 && bars[i].Value >= 4*max(med, 1)
	}
}

func (c *Console) runChart(r *http.Request, rq *request, src string) (*audit.QueryResult, error) {
	if c.opts.Query == nil {
		return nil, audit.Errorf(audit.EUNAVAILABLE, "queries are not enabled on this server")
	}
	q, err := c.parse(rq, src)
	if err != nil {
		return nil, err
	}
	return c.opts.Query.RunQuery(r.Context(), audit.QueryScope{Tenant: rq.tenant}, q)
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request, rq *request) error {
	now := c.now().UTC().Truncate(time.Minute)
	data := map[string]any{"Title": "Overview"}
	rows := 0

	// Failed logins per minute over the last 6 hours.
	res, err := c.runChart(r, rq, "time:>=-6h action:auth.login.failure | stats count() by bin(time, 1m)")
	if err != nil {
		return err
	}
	perMin := map[int64]int64{}
	for _, row := range res.Rows {
		if t, ok := row[0].(time.Time); ok {
			n, _ := row[1].(int64)
			perMin[t.Unix()] = n
		}
	}
	var bars []bar
	var total int64
	for t := now.Add(-6 * time.Hour); !t.After(now); t = t.Add(time.Minute) {
		n := perMin[t.Unix()]
		total += n
		bars = append(bars, bar{Label: t.Format("15:04"), Value: n})
	}
	markWaves(bars)
	waves := 0
	for _, b := range bars {
		if b.Hot {
			waves++
		}
	}
	data["Failures"], data["FailureTotal"], data["WaveMinutes"] = perMinuteChart(bars, "Failed logins per minute, last 6 hours"), total, waves
	rows += len(res.Rows)

	// Successful logins by country over the last 7 days.
	res, err = c.runChart(r, rq, "time:>=-7d action:auth.login.success | stats count() by geo.country | sort -count | head 12")
	if err != nil {
		return err
	}
	var countries []bar
	for _, row := range res.Rows {
		name, _ := row[0].(string)
		n, _ := row[1].(int64)
		if name == "" {
			name = "unknown"
		}
		countries = append(countries, bar{Label: name, Value: n})
	}
	if len(countries) > 0 {
		data["Countries"] = hbarChart(countries, "Successful logins by country, last 7 days")
	}
	data["CountryRows"] = countries
	rows += len(res.Rows)

	// Findings by rule and day over the last 14 days.
	if rq.p.Has(audit.ScopeFindingsRead) {
		f := audit.FindingFilter{Tenant: rq.tenant, Since: now.Add(-14 * 24 * time.Hour), Limit: audit.MaxPageSize, ActorID: rq.ActorOnly()}
		page, err := c.opts.Findings.SearchFindings(r.Context(), f)
		if err != nil {
			return err
		}
		counts := map[string]map[string]int{}
		totals := map[string]int{}
		for _, fd := range page.Findings {
			d := fd.FirstSeen.UTC().Format("2006-01-02")
			if counts[fd.RuleID] == nil {
				counts[fd.RuleID] = map[string]int{}
			}
			counts[fd.RuleID][d]++
			totals[fd.RuleID]++
		}
		var ruleIDs []string
		for id := range counts {
			ruleIDs = append(ruleIDs, id)
		}
		slices.SortFunc(ruleIDs, func(a, b string) int { return cmp.Or(totals[b]-totals[a], strings.Compare(a, b)) })
		var days []string
		for t := now.Add(-13 * 24 * time.Hour); !t.After(now); t = t.Add(24 * time.Hour) {
			days = append(days, t.Format("2006-01-02"))
		}
		if len(ruleIDs) > 0 {
			data["ByRule"] = heatmap(ruleIDs, days, counts, "Findings by rule per day, last 14 days")
		}
		data["RuleTotals"], data["RuleIDs"] = totals, ruleIDs
		rows += len(page.Findings)
	}
	c.show(w, r, rq, "overview", "overview", rows, data)
	return nil
}
