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

// classify decides the class: headless markers first (they also look like
// browsers), then scripted clients, crawlers, mobile apps and browsers.
func classify(s string, r Result) string {
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
