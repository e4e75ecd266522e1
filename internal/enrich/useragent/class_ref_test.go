package useragent

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
)

// classifySlow is the classification rule as first written, marker by
// marker; the classifier must decide exactly as it does.
func classifySlow(s string, r Result) string {
	low := strings.ToLower(s)
	for _, m := range headlessMarkers {
		if strings.Contains(low, m) {
			return audit.UAClassHeadless
		}
	}
	for _, m := range scriptedMarkers {
		if strings.HasPrefix(low, m) || strings.Contains(low, " "+m) {
			return audit.UAClassScripted
		}
	}
	if r.DeviceFamily == "Spider" {
		return audit.UAClassCrawler
	}
	browser := r.Family != "Other" && strings.HasPrefix(s, "Mozilla/") || strings.HasPrefix(s, "Opera")
	if !browser {
		for _, m := range crawlerMarkers {
			if strings.Contains(low, m) {
				return audit.UAClassCrawler
			}
		}
	}
	if !browser {
		for _, m := range appMarkers {
			if strings.Contains(low, m) {
				return audit.UAClassMobileApp
			}
		}
		if r.OSFamily == "iOS" || r.OSFamily == "Android" {
			return audit.UAClassMobileApp
		}
	}
	if r.Family != "Other" {
		return audit.UAClassBrowser
	}
	return audit.UAClassUnknown
}

// TestClassifyMatchesSlow checks the one-pass classifier against the
// marker-by-marker rule on the test suites and synthetic user agents,
// with each string's real parse and with fixed parses that reach every
// branch.
func TestClassifyMatchesSlow(t *testing.T) {
	u, err := compileUAP(embeddedRegexes)
	if err != nil {
		t.Fatal(err)
	}
	c := newClassifier()
	corpus := corpusUAs(t)
	g := newUAGen(11, corpus, gateLiterals(u))
	inputs := append(append([]string(nil), corpus...), g.randomUAs(3000)...)
	inputs = append(inputs, g.adversarialUAs(300)...)
	var markers []string
	for _, l := range [][]string{headlessMarkers, scriptedMarkers, crawlerMarkers, appMarkers} {
		markers = append(markers, l...)
	}
	for _, m := range markers {
		for _, s := range []string{m, strings.ToUpper(m), "x " + m, "x" + m, "é " + m, "\u212a" + m, "Mozilla/5.0 " + m, "Opera " + m} {
			inputs = append(inputs, s, s+"/1.0")
		}
	}
	fixed := []Result{
		{Family: "Other", OSFamily: "Other", DeviceFamily: "Other"},
		{Family: "Chrome", OSFamily: "Android", DeviceFamily: "Spider"},
		{Family: "Other", OSFamily: "iOS", DeviceFamily: "Other"},
	}
	for i, s := range inputs {
		if (testing.Short() || raceEnabled) && i%10 != 0 {
			continue
		}
		for _, r := range append(fixed, u.parse(s)) {
			if got, want := c.classify(s, r), classifySlow(s, r); got != want {
				t.Errorf("classify(%q, %+v) = %s, want %s", s, r, got, want)
			}
		}
	}
}
