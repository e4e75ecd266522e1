package useragent_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/useragent"
)

// Vigil's own cases for the automation classes rule 5 acts on.
var classCases = []struct{ ua, class, browser string }{
	{"", "empty", ""},
	{"   ", "empty", ""},
	{"-", "empty", ""},
	{"curl/8.5.0", "scripted", "curl"},
	{"Wget/1.21.4", "scripted", ""},
	{"python-requests/2.31.0", "scripted", "Python Requests"},
	{"Python-urllib/3.11", "scripted", ""},
	{"python-httpx/0.27.0", "scripted", ""},
	{"Go-http-client/1.1", "scripted", ""},
	{"Go-http-client/2.0", "scripted", ""},
	{"okhttp/4.12.0", "scripted", ""},
	{"Java/17.0.2", "scripted", ""},
	{"Apache-HttpClient/4.5.14 (Java/17.0.9)", "scripted", ""},
	{"Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.3031", "scripted", ""},
	{"PowerShell/7.4 (Windows NT 10.0; Win64; x64)", "scripted", ""},
	{"libwww-perl/6.72", "scripted", ""},
	{"axios/1.6.7", "scripted", ""},
	{"node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "scripted", ""},
	{"PostmanRuntime/7.36.3", "scripted", ""},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36", "headless", ""},
	{"Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", "headless", ""},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Selenium", "headless", ""},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "browser", "Chrome"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "browser", "Mobile Safari"},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0", "browser", "Firefox"},
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler", "Googlebot"},
	{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "crawler", "bingbot"},
	{"Slack/23.09.10 CFNetwork/1410.0.3 Darwin/22.6.0", "mobile_app", ""},
	{"Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)", "mobile_app", ""},
	{"AcmeBank/5.2.1 (iPhone; iOS 17.4; Scale/3.00)", "mobile_app", ""},
	{"something entirely unknown", "unknown", ""},
}

func TestClass(t *testing.T) {
	p, err := useragent.New(useragent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range classCases {
		e := &audit.Event{Context: audit.Context{UserAgent: c.ua}}
		if err := p.Enrich(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		got := e.Enrichment.UserAgent
		if got == nil || got.Class != c.class {
			t.Errorf("class(%q) = %+v, want %s", c.ua, got, c.class)
			continue
		}
		if c.browser != "" && got.Browser != c.browser {
			t.Errorf("browser(%q) = %q, want %q", c.ua, got.Browser, c.browser)
		}
	}
	chrome := p.Parse(classCases[22].ua)
	if chrome.OS != "Windows" || chrome.OSVersion != "10" || chrome.BrowserVersion != "126.0.0" || chrome.Device != "" {
		t.Errorf("chrome = %+v", chrome)
	}
	if st := p.Status(); len(st) != 1 || st[0].Entries < 1000 || !st[0].Loaded {
		t.Errorf("status = %+v", st)
	}
}

func TestBadRegexes(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"user_agent_parsers: [", "regexes.yaml"},
		{"user_agent_parsers: []", "empty"},
		{"user_agent_parsers:\n  - regex: '(?<=x)'\n", "user_agent_parsers[0].regex"},
		{"user_agent_parsers:\n  - regex: 'x'\ndevice_parsers:\n  - regex: 'y'\n    regex_flag: 'q'\n", "device_parsers[0].regex_flag"},
	} {
		_, err := useragent.New(useragent.Options{Regexes: []byte(tt.yaml)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) error = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

// FuzzParse checks that any input yields a valid class and valid UTF-8
// fields no longer than the input, and that the cache returns what a fresh
// parse returns.
func FuzzParse(f *testing.F) {
	for _, c := range classCases {
		f.Add(c.ua)
	}
	p, err := useragent.New(useragent.Options{})
	if err != nil {
		f.Fatal(err)
	}
	fresh, _ := useragent.New(useragent.Options{CacheSize: -1})
	classes := map[string]bool{"browser": true, "mobile_app": true, "crawler": true, "scripted": true, "headless": true, "empty": true, "unknown": true}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2048 {
			return
		}
		a, b := p.Parse(s), fresh.Parse(s)
		if a != b {
			t.Fatalf("cached %+v != fresh %+v", a, b)
		}
		if !classes[a.Class] {
			t.Fatalf("class %q", a.Class)
		}
		for _, v := range []string{a.Browser, a.BrowserVersion, a.OS, a.OSVersion, a.Device} {
			if utf8.ValidString(s) && !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8 field %q from valid input", v)
			}
		}
	})
}
