package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ImportResult is the vendor-file import phase: a generated Okta System
// Log NDJSON file imported with `vigil import okta FILE` into a fresh
// server, as an operator would.
type ImportResult struct {
	Records   int
	FileBytes int64
	Command   string
	// Wall is the CLI's run, from start to exit: every record
	// acknowledged (durable) by POST /v1/import/okta.
	Wall                         time.Duration
	Accepted, Duplicates, Reject int
	// Progress is the CLI's last progress line (its own rate).
	Progress string
	// Drain is from the CLI's start until the pipeline had enriched,
	// evaluated and stored every accepted event.
	Drain DrainResult
	// CPU is the server's (user+system) until Drain.
	CPU time.Duration
	Err error
}

// Rate is records acknowledged per second of the CLI's wall time.
func (r ImportResult) Rate() float64 { return float64(r.Records) / max(r.Wall.Seconds(), 1e-9) }

// oktaTypes maps the generator's actions onto Okta System Log event types
// (docs/importers.md has the reverse mapping); the rest are Okta types the
// importer keeps as okta.* custom actions.
var oktaTypes = map[string]string{
	"auth.login.success": "user.session.start", "auth.login.failure": "user.session.start", "auth.logout": "user.session.end",
	"auth.password.changed": "user.account.update_password", "auth.password.reset": "user.account.reset_password",
	"auth.mfa.enrolled": "user.mfa.factor.activate", "user.role.changed": "user.account.privilege.grant",
	"api_key.created": "system.api_token.create", "user.email.changed": "user.account.update_profile",
	"session.created": "app.oauth2.token.grant", "data.exported": "application.user_membership.show",
	"data.downloaded": "app.generic.download",
}

// oktaRecord is the part of an Okta System Log record the importer reads.
type oktaRecord struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Version   string `json:"version"`
	Severity  string `json:"severity"`
	Display   string `json:"displayMessage"`
	Actor     struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AlternateID string `json:"alternateId"`
		DisplayName string `json:"displayName"`
	} `json:"actor"`
	Client struct {
		UserAgent struct {
			Raw string `json:"rawUserAgent"`
		} `json:"userAgent"`
		IPAddress string `json:"ipAddress"`
		ID        string `json:"id,omitempty"`
		Geo       struct {
			City    string `json:"city"`
			Country string `json:"country"`
			Geo     struct {
				Lat float64 `json:"lat"`
				Lon float64 `json:"lon"`
			} `json:"geolocation"`
		} `json:"geographicalContext"`
	} `json:"client"`
	Outcome struct {
		Result string `json:"result"`
		Reason string `json:"reason,omitempty"`
	} `json:"outcome"`
	AuthenticationContext struct {
		CredentialType    string `json:"credentialType,omitempty"`
		ExternalSessionID string `json:"externalSessionId,omitempty"`
	} `json:"authenticationContext"`
	Transaction struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"transaction"`
	DebugContext struct {
		DebugData map[string]string `json:"debugData,omitempty"`
	} `json:"debugContext"`
	Target []oktaTarget `json:"target,omitempty"`
}

type oktaTarget struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
}

// OktaRecord returns event i of the generator as an Okta System Log record.
func (g *Gen) OktaRecord(i int) oktaRecord {
	ev := g.Event(i)
	var r oktaRecord
	r.UUID = strings.ToLower(ev.ID)
	r.Published = ev.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	r.EventType = oktaTypes[ev.Action]
	r.Version, r.Severity, r.Display = "0", "INFO", ev.Action
	r.Actor.ID, r.Actor.Type, r.Actor.AlternateID, r.Actor.DisplayName = "00u"+ev.Actor, "User", ev.Actor+"@example.com", ev.Actor
	if ev.ua < 0 {
		r.Client.UserAgent.Raw = botAgents[-1-ev.ua]
	} else {
		r.Client.UserAgent.Raw = userAgents[ev.ua]
	}
	r.Client.IPAddress = ev.IP.String()
	c := cities[ev.city]
	r.Client.Geo.City, r.Client.Geo.Country = c.name, c.country
	r.Client.Geo.Geo.Lat, _ = strconv.ParseFloat(c.lat, 64)
	r.Client.Geo.Geo.Lon, _ = strconv.ParseFloat(c.lon, 64)
	r.Outcome.Result = "SUCCESS"
	r.AuthenticationContext.ExternalSessionID = ev.Session
	r.Transaction.Type, r.Transaction.ID = "WEB", "tx"+strconv.FormatUint(ev.extra>>1, 36)
	switch ev.Action {
	case "auth.login.success":
		r.AuthenticationContext.CredentialType = "PASSWORD"
	case "auth.login.failure":
		r.Outcome.Result, r.Outcome.Reason = "FAILURE", "INVALID_CREDENTIALS"
		if ev.Reason == "unknown_user" {
			r.Outcome.Reason = "UNKNOWN_USER"
		}
	case "auth.mfa.enrolled":
		r.DebugContext.DebugData = map[string]string{"factor": "OKTA_VERIFY_PUSH"}
	case "user.role.changed":
		r.DebugContext.DebugData = map[string]string{"privilegeGranted": "Organization administrator"}
	}
	if ev.Target != "" {
		r.Target = []oktaTarget{{ID: "00u" + ev.Target, Type: "User", AlternateID: ev.Target + "@example.com"}}
	}
	return r
}

// writeOktaFile writes n records as NDJSON to path.
func writeOktaFile(path string, g *Gen, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for i := range n {
		if err := enc.Encode(g.OktaRecord(i)); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return st.Size(), f.Close()
}

var importSummary = regexp.MustCompile(`(\d+) accepted, (\d+) duplicates, (\d+) rejected`)

// measureImport starts a fresh server in dir, writes an n-record Okta file
// there and imports it with the real binary's `vigil import okta`, then
// waits until the pipeline has stored every accepted event.
func measureImport(ctx context.Context, bin, dir string, n int, logf func(string, ...any)) (ImportResult, error) {
	res := ImportResult{Records: n}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	end := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	g := NewGen(n, end.Add(-10*24*time.Hour), end)
	file := filepath.Join(dir, "okta-system-log.ndjson")
	logf("import: writing a %d-record Okta System Log file", n)
	size, err := writeOktaFile(file, g, n)
	if err != nil {
		return res, err
	}
	defer os.Remove(file)
	res.FileBytes = size
	srv, err := StartServer(bin, filepath.Join(dir, "data"))
	if err != nil {
		return res, err
	}
	defer srv.Kill()
	if srv.Key == "" {
		return res, fmt.Errorf("no operator key in the data directory; server stderr:\n%s", srv.Stderr())
	}
	if err := srv.createTenants(ctx, 1); err != nil {
		return res, err
	}
	m0, err := srv.scrape(ctx)
	if err != nil {
		return res, err
	}
	cpu0, _ := ProcCPU(srv.Pid())
	args := []string{"import", "--tenant", TenantName(0), "--progress-every", "5s", "okta", file}
	res.Command = "vigil " + strings.Join(args[:len(args)-1], " ") + " " + filepath.Base(file)
	logf("import: %s (%s)", res.Command, mib(size))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "VIGIL_SERVER="+srv.URL, "VIGIL_API_KEY="+srv.Key)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	runErr := cmd.Run()
	res.Wall = time.Since(t0)
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(l, "sent ") {
			res.Progress = strings.TrimSpace(l)
		}
	}
	m := importSummary.FindStringSubmatch(stdout.String())
	if m == nil {
		return res, fmt.Errorf("vigil import: %v: %s %s", runErr, stdout.String(), lastLine(stderr.String()))
	}
	res.Accepted, _ = strconv.Atoi(m[1])
	res.Duplicates, _ = strconv.Atoi(m[2])
	res.Reject, _ = strconv.Atoi(m[3])
	logf("  %s; %s", strings.TrimSpace(stdout.String()), res.Progress)
	want := m0["vigil_pipeline_events_total"] + float64(res.Accepted)
	if res.Drain, err = waitDrained(ctx, srv, want, t0, 60*time.Minute, func(stored, lag float64) {
		logf("  pipeline: %.0f stored, lag %.0f", stored, lag)
	}); err != nil {
		return res, err
	}
	res.CPU = cpuSince(srv, cpu0)
	logf("  stored in %s: %.0f events/s end to end", res.Drain.Elapsed.Round(time.Millisecond), float64(res.Accepted)/res.Drain.Elapsed.Seconds())
	if err := srv.Stop(2 * time.Minute); err != nil {
		logf("  stop: %v", err)
	}
	return res, nil
}

// importReport is the report's section on the import phase.
func importReport(r ImportResult) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## Import of a vendor file\n\n")
	if r.Err != nil {
		w("Not measured: %v\n\n", r.Err)
		return b.String()
	}
	w("A %s-record Okta System Log export (NDJSON, %s, the workload's events as Okta records: `bench/importphase.go`) imported into one tenant of a "+
		"fresh server with `%s` — the CLI streams it in batches of 1,000 records to `POST /v1/import/okta`, which decodes and ingests them durably.\n\n",
		human(float64(r.Records)), mib(r.FileBytes), r.Command)
	w("| records | accepted | duplicates | rejected | CLI wall time (all acknowledged) | records/s | stored by the pipeline after | end to end records/s | server CPU |\n|---|---|---|---|---|---|---|---|---|\n")
	w("| %d | %d | %d | %d | %s | **%.0f** | %s | %.0f | %s |\n\n", r.Records, r.Accepted, r.Duplicates, r.Reject, r.Wall.Round(time.Millisecond), r.Rate(),
		r.Drain.Elapsed.Round(time.Millisecond), float64(r.Accepted)/max(r.Drain.Elapsed.Seconds(), 1e-9), r.CPU.Round(time.Millisecond))
	if r.Progress != "" {
		w("The CLI's last progress line: `%s`.\n\n", r.Progress)
	}
	return b.String()
}

// runImport is `go run ./bench import`: the import phase alone, printed.
func runImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench import", flag.ContinueOnError)
	records := fs.Int("records", 1_000_000, "records in the generated Okta file")
	workDir := fs.String("workdir", os.TempDir(), "directory for the file, the server's data directory and the binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *records < 1 {
		return errors.New("-records must be positive")
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	work, err := os.MkdirTemp(*workDir, "vigil-bench-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := buildVigil(ctx, work)
	if err != nil {
		return err
	}
	r, err := measureImport(ctx, bin, filepath.Join(work, "import"), *records, logf)
	if err != nil {
		return err
	}
	fmt.Print(importReport(r))
	return nil
}
