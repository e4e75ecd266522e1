package useragent_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/enrich/useragent"
)

var benchUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
	"curl/8.5.0",
	"python-requests/2.31.0",
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := useragent.New(useragent.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := useragent.New(useragent.Options{CacheSize: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			e := &audit.Event{}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Context.UserAgent = benchUAs[i%len(benchUAs)]
				i++
				_ = p.Enrich(ctx, e)
			}
		})
	}
	for i, ua := range benchUAs {
		b.Run("uncached/"+strconv.Itoa(i), func(b *testing.B) {
			p, _ := useragent.New(useragent.Options{CacheSize: -1})
			for b.Loop() {
				p.Details(ua)
			}
		})
	}
}
