package useragent

import (
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
)

// Markers are matched case-insensitively as substrings of the user agent.
var (
	// headlessMarkers name headless browsers and browser-automation tools.
	headlessMarkers = []string{
		"headlesschrome", "phantomjs", "slimerjs", "selenium", "webdriver", "puppeteer",
		"playwright", "nightmare", "electron/", "jsdom", "cypress", "splash", "htmlunit",
	}
	// scriptedMarkers name HTTP libraries and command-line clients. They
	// are matched at the start of the string or after a space, so a
	// browser's "(KHTML, like Gecko)" never counts.
	scriptedMarkers = []string{
		"curl/", "wget/", "python-requests/", "python-urllib/", "python-httpx/", "python/", "aiohttp/",
		"httpx/", "go-http-client/", "okhttp/", "java/", "apache-httpclient/", "jakarta commons-httpclient",
		"powershell/", "windowspowershell/", "libwww-perl/", "lwp::simple", "php/", "guzzlehttp/",
		"ruby", "faraday", "axios/", "node-fetch/", "got (", "undici", "node/", "deno/", "bun/",
		"postmanruntime/", "insomnia/", "httpie/", "rest-client/", "restsharp/", "dart:io", "dart/",
		"reqwest/", "hyper/", "libcurl", "winhttp", "microsoft-cryptoapi/", "nmap scripting engine",
		"masscan/", "zgrab/", "sqlmap/", "nikto", "hydra", "scrapy/", "mechanize", "httpclient/",
		"cfnetwork-curl", "k6/", "locust/", "wrk/", "apachebench/", "jmeter", "gatling", "okhttp",
	}
	// crawlerMarkers catch bots the uap-core device parser does not mark.
	crawlerMarkers = []string{"bot", "crawler", "spider", "slurp", "crawl", "archiver", "monitor", "preview"}
	// appMarkers name the HTTP stacks of native mobile apps.
	appMarkers = []string{"cfnetwork/", "dalvik/", "darwin/", "(iphone; ios", "ios/", "android/", "okhttp/"}
)

// marker kinds, as bits.
const (
	markHeadless = 1 << iota
	markScripted
	markCrawler
	markApp
)

// classifier finds all markers in one pass over the lowercased user agent.
type classifier struct {
	ac *acMatcher
	// For each distinct pattern: the marker kinds it signals wherever it
	// occurs, those it signals only at the start of the string, and its
	// length.
	anywhere, atStart []uint8
	plen              []int
}

func newClassifier() *classifier {
	c := &classifier{}
	var pats []string
	ids := map[string]int{}
	add := func(p string, kind uint8, atStart bool) {
		i, ok := ids[p]
		if !ok {
			i = len(pats)
			ids[p] = i
			pats = append(pats, p)
			c.anywhere = append(c.anywhere, 0)
			c.atStart = append(c.atStart, 0)
			c.plen = append(c.plen, len(p))
		}
		if atStart {
			c.atStart[i] |= kind
		} else {
			c.anywhere[i] |= kind
		}
	}
	for _, m := range headlessMarkers {
		add(m, markHeadless, false)
	}
	for _, m := range scriptedMarkers {
		add(m, markScripted, true)
		add(" "+m, markScripted, false)
	}
	for _, m := range crawlerMarkers {
		add(m, markCrawler, false)
	}
	for _, m := range appMarkers {
		add(m, markApp, false)
	}
	c.ac = newACMatcher(pats)
	return c
}

// marks returns the kinds of marker that strings.ToLower(s) contains
// (scripted markers at its start or after a space).
func (c *classifier) marks(s string) uint8 {
	low := s // the automaton reads ASCII uppercase as lowercase
	if !isASCII(s) {
		low = strings.ToLower(s)
	}
	var k uint8
	c.ac.scan(low, func(pat int32, end int) {
		k |= c.anywhere[pat]
		if end == c.plen[pat] {
			k |= c.atStart[pat]
		}
	})
	return k
}

// classify decides the class: headless markers first (they also look like
// browsers), then scripted clients, crawlers, mobile apps and browsers.
// It decides exactly as classifySlow, which states the rules plainly.
func (c *classifier) classify(s string, r Result) string {
	k := c.marks(s)
	if k&markHeadless != 0 {
		return audit.UAClassHeadless
	}
	if k&markScripted != 0 {
		return audit.UAClassScripted
	}
	if r.DeviceFamily == "Spider" {
		return audit.UAClassCrawler
	}
	browser := r.Family != "Other" && strings.HasPrefix(s, "Mozilla/") || strings.HasPrefix(s, "Opera")
	if !browser && k&markCrawler != 0 {
		return audit.UAClassCrawler
	}
	if !browser {
		if k&markApp != 0 {
			return audit.UAClassMobileApp
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
