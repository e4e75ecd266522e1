package cli

import (
	"bytes"
	"context"
	"flag"
	"runtime/debug"
	"strings"
	"testing"
)

// TestEveryCommandHelpShowsItsFlags checks "vigil help X" lists every flag
// X declares, in the --name form, for every command.
func TestEveryCommandHelpShowsItsFlags(t *testing.T) {
	for _, c := range commands() {
		var out, errb bytes.Buffer
		args := append([]string{"help"}, strings.Fields(c.Name)...)
		if code := Main(t.Context(), args, strings.NewReader(""), &out, &errb, func(string) string { return "" }); code != ExitOK {
			t.Fatalf("vigil %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		fs := commandFlags(context.Background(), &Env{Getenv: func(string) string { return "" }}, c)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			n++
			if !strings.Contains(out.String(), "--"+f.Name) {
				t.Errorf("vigil help %s does not show --%s:\n%s", c.Name, f.Name, out.String())
			}
		})
		if n > 0 && !strings.Contains(out.String(), "Flags:") {
			t.Errorf("vigil help %s has no Flags section", c.Name)
		}
	}
}

func TestServerURL(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		flag   string
		getenv func(string) string
		want   string
	}{
		{"", env(), DefaultServer},
		{"127.0.0.1:9000", env(), "http://127.0.0.1:9000"},
		{"", env("VIGIL_SERVER", "vigil.internal:8080"), "http://vigil.internal:8080"},
		{"", env("VIGIL_SERVER", "https://vigil.example.com/prefix"), "https://vigil.example.com/prefix"},
		// The server's own listen variable works for the client commands too.
		{"", env("VIGIL_SERVER_ADDR", "127.0.0.1:8181"), "http://127.0.0.1:8181"},
		{"", env("VIGIL_SERVER_ADDR", "0.0.0.0:8181"), "http://127.0.0.1:8181"},
		{"", env("VIGIL_SERVER_ADDR", ":8181"), "http://127.0.0.1:8181"},
		{"", env("VIGIL_SERVER_ADDR", "[::1]:8181"), "http://[::1]:8181"},
		{"", env("VIGIL_SERVER", "http://a:1", "VIGIL_SERVER_ADDR", "b:2"), "http://a:1"},
		{"c:3", env("VIGIL_SERVER", "http://a:1"), "http://c:3"},
	} {
		got, err := serverURL(tc.flag, tc.getenv)
		if err != nil || got != tc.want {
			t.Errorf("serverURL(%q): %q, %v; want %q", tc.flag, got, err, tc.want)
		}
	}
	for _, bad := range []string{"localhost", "ftp://x:1", "http://", "http://u:p@h:1", "h:99999", "http://h:1/?q=1", "h:port"} {
		_, err := serverURL(bad, env())
		if err == nil || !strings.Contains(err.Error(), "--server") || !strings.Contains(err.Error(), "want host:port") {
			t.Errorf("serverURL(%q): %v, want an error naming --server and the accepted forms", bad, err)
		}
	}
	if _, err := serverURL("", env("VIGIL_SERVER", "nope")); err == nil || !strings.Contains(err.Error(), "VIGIL_SERVER") {
		t.Errorf("bad VIGIL_SERVER: %v", err)
	}
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/vigilhq/vigil", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "e5642e8a1b2c3d4e5f60718293a4b5c6d7e8f901"},
			{Key: "vcs.time", Value: "2026-12-05T08:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionLine(bi), "vigil devel revision e5642e8a1b2c (2026-12-05T08:00:00Z) with local changes, go1.26.0"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}
	if got, want := versionLine(bi), "vigil v1.2.3, go1.26.0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bi = &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}
	if got := versionLine(bi); strings.Contains(got, "(devel)") || !strings.Contains(got, "no VCS information") || !strings.HasSuffix(got, "go1.26.0") {
		t.Errorf("got %q", got)
	}
}
