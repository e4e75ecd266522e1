package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/app"
	"github.com/vigilhq/vigil/internal/config"
	"github.com/vigilhq/vigil/internal/natsstream"
)

// TestPartitionedDetectionAcrossNodes: with detection partitioned, a
// standby runs its share of the detection units beside the active node.
// A tenant whose unit runs on the standby has its events detected there,
// and the active node's risk API scores its logins on that engine (here:
// the account's recent failures, which only that engine saw). Calls
// between nodes without a valid signature are refused, the standby's
// /metrics shows its units, and when the standby stops, the active node
// takes its units over.
func TestPartitionedDetectionAcrossNodes(t *testing.T) {
	nats := onNATS(t)
	aDir := t.TempDir()
	a := startNode(t, nats, func(c *config.Config) { c.Server.NodeName, c.Storage.SQLite.Dir = "node-a", aDir })

	bcfg := config.Default()
	nats(&bcfg)
	bcfg.Storage.SQLite.Dir = t.TempDir()
	copyNodeKeys(t, aDir, bcfg.Storage.SQLite.Dir)
	bcfg.Server.Addr, bcfg.Server.NodeName, bcfg.Log.Level = freeAddr(t), "node-b", "error"
	bctx, bcancel := context.WithCancel(context.Background())
	bDone := make(chan error, 1)
	go func() {
		// A standby: New returns only if it becomes active, or fails when
		// bctx ends, stopping its units.
		b, err := app.New(bctx, bcfg, app.Options{Stderr: io.Discard})
		if err == nil {
			err = b.Run(bctx)
		}
		bDone <- err
	}()
	stopB := sync1(func() {
		bcancel()
		<-bDone
	})
	defer stopB()
	bURL := "http://" + bcfg.Server.Addr

	var onB []string
	waitFor(t, "the detection units to spread over both nodes", func() bool {
		st, err := app.Cluster(t.Context(), bcfg, time.Now())
		if err != nil {
			return false
		}
		onB = onB[:0]
		holders := map[string]bool{}
		for _, u := range st.Units {
			if u.Held {
				holders[u.Holder] = true
				if u.Holder == "node-b" {
					onB = append(onB, u.Name)
				}
			}
		}
		return len(holders) == 2 && len(st.Units) == 17
	})
	// A tenant whose events the standby's engine evaluates.
	tenant := ""
	for i := 0; tenant == ""; i++ {
		name := fmt.Sprintf("tenant%d", i)
		if slices.Contains(onB, fmt.Sprintf("p%d", natsstream.Partition(name, bcfg.Stream.NATS.Partitions))) {
			tenant = name
		}
	}
	unit := fmt.Sprintf("p%d", natsstream.Partition(tenant, bcfg.Stream.NATS.Partitions))
	c, key := a.tenantClient(t, tenant)
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var fails []client.Event
	for i := range 6 {
		e := login("alice", "203.0.113.9", at.Add(time.Duration(i)*10*time.Second))
		e.ID, e.Action, e.Reason = fmt.Sprintf("f-%d", i), "auth.login.failure", "invalid_password"
		fails = append(fails, e)
	}
	if _, err := c.Send(t.Context(), fails...); err != nil {
		t.Fatal(err)
	}
	waitForEvents(t, c, client.SearchParams{Action: "auth.login.failure"}, 6)

	// The active node scores alice's login on node-b's engine.
	last := ""
	defer func() {
		if t.Failed() {
			t.Logf("last risk answer: %s", last)
		}
	}()
	body := fmt.Sprintf(`{"actor":{"id":"alice"},"time":%q,"context":{"ip":"203.0.113.9","user_agent":"Mozilla/5.0 Chrome/122","auth_method":"password","session_id":"s1"}}`, at.Add(2*time.Minute).Format(time.RFC3339))
	waitFor(t, "a risk score with the failures node-b's engine holds", func() bool {
		status, got := raw(t, "POST", a.url+"/v1/risk", key, body)
		last = fmt.Sprintf("%d %s", status, got)
		return status == http.StatusOK && strings.Contains(string(got), "recent_failures")
	})

	// Calls between nodes must be signed, and recent.
	for _, h := range []string{"", "t=" + fmt.Sprint(time.Now().Unix()) + ",mac=00ff", "t=" + fmt.Sprint(time.Now().Add(-2*time.Hour).Unix()) + ",mac=00ff"} {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", bURL+"/internal/v1/units/"+unit+"/score", strings.NewReader(`{"tenant":"`+tenant+`"}`))
		if h != "" {
			req.Header.Set("Vigil-Unit-Auth", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an unsigned or badly signed call (%q) = %d, want 401", h, resp.StatusCode)
		}
	}
	if status, m := raw(t, "GET", bURL+"/metrics", "", ""); status != 200 || !strings.Contains(string(m), `vigil_pipeline_events_total{unit="`+unit+`"}`) {
		t.Errorf("the standby's /metrics = %d, without its unit %s's pipeline metrics", status, unit)
	}
	// Its /readyz (503: not the node to route the API to) names its units
	// and their backlog.
	var ready struct {
		Ready bool     `json:"ready"`
		Role  string   `json:"role"`
		Units []string `json:"units"`
		Lag   *int64   `json:"lag_events"`
	}
	status, rb := raw(t, "GET", bURL+"/readyz", "", "")
	if err := json.Unmarshal(rb, &ready); err != nil || status != http.StatusServiceUnavailable || ready.Role != "standby" ||
		!slices.Contains(ready.Units, unit) || ready.Lag == nil || *ready.Lag < 0 {
		t.Errorf("the standby's /readyz = %d %s, want 503 naming its units (%s among them) and their backlog", status, rb, unit)
	}

	// The standby stops: its units are given back, and node-a takes them.
	stopB()
	waitFor(t, "node-a to run every unit", func() bool {
		st, err := app.Cluster(t.Context(), bcfg, time.Now())
		if err != nil {
			return false
		}
		for _, u := range st.Units {
			if !u.Held || u.Holder != "node-a" {
				return false
			}
		}
		return len(st.Units) == 17
	})
	// Detection of the tenant goes on, on node-a, from node-b's checkpoint.
	ok := login("alice", "203.0.113.9", at.Add(3*time.Minute))
	ok.ID = "after"
	if _, err := c.Send(t.Context(), ok); err != nil {
		t.Fatal(err)
	}
	got := waitForEvents(t, c, client.SearchParams{Actor: "alice", Action: "auth.login.success"}, 1)
	waitFor(t, "the login scored by node-a's engine with node-b's state", func() bool {
		got = waitForEvents(t, c, client.SearchParams{Actor: "alice", Action: "auth.login.success"}, 1)
		return got[0].Risk != nil && slices.Contains(got[0].Risk.Reasons, "recent_failures")
	})
}

// sync1 runs fn once, however often the result is called.
func sync1(fn func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			fn()
		}
	}
}

// TestPartitionedRefusesUnpartitionableRules: an operator rule that
// partitioned detection cannot evaluate as one engine does stops the node
// at start, naming the rule, instead of every unit failing later.
func TestPartitionedRefusesUnpartitionableRules(t *testing.T) {
	dir := t.TempDir()
	rule := `id: wide-flag
name: Installation-wide flag
description: test
kind: distinct
severity: high
on: [auth.login.failure]
group_by: [installation]
window: 10m
distinct: event.ctx.ip
condition: distinct >= 20
explain: "{distinct} addresses"
flag: {name: wide_wave, ttl: 1h, values: distinct}
`
	if err := os.WriteFile(filepath.Join(dir, "wide.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	onNATS(t)(&cfg)
	cfg.Server.Addr, cfg.Storage.SQLite.Dir, cfg.Log.Level = "127.0.0.1:0", t.TempDir(), "error"
	cfg.Detect.RulesDir = dir
	_, err := app.New(t.Context(), cfg, app.Options{Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "detect.partitioned") || !strings.Contains(err.Error(), "wide-flag") {
		t.Fatalf("app.New = %v, want a refusal naming detect.partitioned and the rule", err)
	}
}
