package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
)

// travelLogins are four daily logins of actor from Paris, then one from
// Sydney an hour after the last: impossible travel from a new place.
func travelLogins(actor, ipPrefix, ua string, start time.Time) []client.Event {
	paris := &client.ClientGeo{Country: "FR", City: "Paris", Latitude: ptrF(48.8566), Longitude: ptrF(2.3522)}
	sydney := &client.ClientGeo{Country: "AU", City: "Sydney", Latitude: ptrF(-33.8688), Longitude: ptrF(151.2093)}
	var evs []client.Event
	for i := range 4 {
		evs = append(evs, client.Event{ID: fmt.Sprintf("%s-%d", actor, i), Action: "auth.login.success", Time: start.Add(time.Duration(i) * 24 * time.Hour),
			Actor:   client.Actor{ID: actor, Type: "user"},
			Context: client.Context{IP: ipPrefix + "10", UserAgent: ua, SessionID: fmt.Sprintf("%s-s%d", actor, i), AuthMethod: "password", DeviceID: "laptop-" + actor, Geo: paris}})
	}
	evs = append(evs, client.Event{ID: actor + "-far", Action: "auth.login.success", Time: start.Add(3*24*time.Hour + time.Hour),
		Actor:   client.Actor{ID: actor, Type: "user"},
		Context: client.Context{IP: ipPrefix + "99", UserAgent: ua, SessionID: actor + "-far", AuthMethod: "password", DeviceID: "laptop-" + actor, Geo: sydney}})
	return evs
}

func ptrF(f float64) *float64 { return &f }

// travelFinding waits for actor's impossible-travel finding in an incident.
func travelFinding(t *testing.T, c *client.Client, actor string) client.Finding {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for f, err := range c.Findings(t.Context(), client.FindingParams{Actor: actor}) {
			if err != nil {
				t.Fatal(err)
			}
			if f.RuleID == "impossible-travel" && f.IncidentID != "" {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no impossible-travel finding in an incident for %s", actor)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestErasureReachesFindingsIncidentsAndProfiles: erasing an actor's
// addresses and user agents removes them from the actor's findings and
// incidents (as the API shows them) and drops the actor's detection
// profile, keeps verification passing, and leaves another actor alone.
func TestErasureReachesFindingsIncidentsAndProfiles(t *testing.T) {
	n := startNode(t)
	acme, key := n.tenantClient(t, "acme")
	start := time.Now().UTC().Truncate(time.Hour).AddDate(0, 0, -5)
	const aliceUA, bobUA = "AliceBrowser/7.1 (X11; Linux)", "BobBrowser/3.2 (Macintosh)"
	evs := append(travelLogins("alice", "81.2.69.", aliceUA, start), travelLogins("bob", "89.160.20.", bobUA, start)...)
	if _, err := acme.Send(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	fa, fb := travelFinding(t, acme, "alice"), travelFinding(t, acme, "bob")
	get := func(path string) []byte {
		t.Helper()
		status, body := raw(t, "GET", n.url+path, key, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		return body
	}
	aliceSecrets := [][]byte{[]byte("81.2.69.10"), []byte("81.2.69.99"), []byte(aliceUA)}
	if body := get("/v1/findings/" + fa.ID); !bytes.Contains(body, aliceSecrets[1]) {
		t.Fatalf("before the erasure the finding does not show the address; the test proves nothing: %s", body)
	}
	// A login of each from Tokyo: risky for an actor with a profile.
	probe := func(actor string) *client.Risk {
		t.Helper()
		r, err := acme.Risk(t.Context(), client.Event{Action: "auth.login.success", Time: start.Add(3*24*time.Hour + 3*time.Hour),
			Actor: client.Actor{ID: actor, Type: "user"}, Context: client.Context{IP: "216.160.83.77", UserAgent: "Other/1.0", AuthMethod: "password", SessionID: "probe", DeviceID: "phone",
				Geo: &client.ClientGeo{Country: "JP", City: "Tokyo", Latitude: ptrF(35.68), Longitude: ptrF(139.69)}}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	stranger, aliceBefore, bobBefore := probe("carol"), probe("alice"), probe("bob")
	if aliceBefore.Score == stranger.Score && slices.Equal(aliceBefore.Reasons, stranger.Reasons) {
		t.Fatalf("alice's profile does not change her risk (%+v): the test proves nothing", aliceBefore)
	}

	rep, err := acme.Erase(t.Context(), client.ErasureRequest{Actor: "alice", Fields: []string{"context.ip", "context.user_agent"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 5 {
		t.Fatalf("erasure report: %+v", rep)
	}
	for _, path := range []string{"/v1/findings/" + fa.ID, "/v1/incidents/" + fa.IncidentID} {
		body := get(path)
		for _, s := range aliceSecrets {
			if bytes.Contains(body, s) {
				t.Errorf("GET %s still holds %q: %s", path, s, body)
			}
		}
	}
	if got := probe("alice"); got.Score != stranger.Score || !slices.Equal(got.Reasons, stranger.Reasons) {
		t.Errorf("alice after the erasure scores %+v, a first login %+v", got, stranger)
	}
	// Bob is untouched: his finding, incident and profile.
	if got := probe("bob"); got.Score != bobBefore.Score || !slices.Equal(got.Reasons, bobBefore.Reasons) {
		t.Errorf("bob's risk changed: %+v, was %+v", got, bobBefore)
	}
	if body := get("/v1/findings/" + fb.ID); !bytes.Contains(body, []byte("89.160.20.99")) {
		t.Errorf("bob's finding lost his address: %s", body)
	}
	if fb.IncidentID != fa.IncidentID {
		if body := get("/v1/incidents/" + fb.IncidentID); !bytes.Contains(body, []byte("89.160.20.99")) {
			t.Errorf("bob's incident lost his address: %s", body)
		}
	}
	// A later finding (brute force) joins alice's incident, still open in detection: its
	// new version does not bring the erased values back.
	before, err := acme.GetIncident(t.Context(), fa.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	var fails []client.Event
	for i := range 15 {
		fails = append(fails, client.Event{ID: fmt.Sprintf("alice-fail-%d", i), Action: "auth.login.failure", Reason: "invalid_password",
			Time: start.Add(3*24*time.Hour + 90*time.Minute + time.Duration(i)*10*time.Second), Actor: client.Actor{ID: "alice"},
			Context: client.Context{IP: fmt.Sprintf("216.160.83.%d", 50+i%3), UserAgent: "Attacker/1.0"}})
	}
	if _, err := acme.Send(t.Context(), fails...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		inc, err := acme.GetIncident(t.Context(), fa.IncidentID)
		if err != nil {
			t.Fatal(err)
		}
		if inc.Incident.FindingCount > before.Incident.FindingCount || inc.Incident.LastSeen.After(before.Incident.LastSeen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's later login did not join her incident: %+v", inc.Incident)
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := get("/v1/incidents/" + fa.IncidentID)
	for _, s := range aliceSecrets {
		if bytes.Contains(body, s) {
			t.Errorf("the incident's next version holds %q again: %s", s, body)
		}
	}
	rec := waitRecords(t, n.op, "acme", "vigil.erasure.completed", 1)[0]
	if rec.Metadata["profile_forgotten"] != true || rec.Metadata["findings"] == 0.0 || rec.Metadata["incidents"] == 0.0 {
		t.Errorf("erasure record: %+v", rec.Metadata)
	}
	checkpoint(t, n)
	from, to := start.Format("2006-01-02"), start.AddDate(0, 0, 4).Format("2006-01-02")
	vr, err := n.app.Verify(t.Context(), "acme", from, to)
	if err != nil || !vr.OK || vr.Broken != nil {
		t.Fatalf("verify after the erasure: %+v %v", vr, err)
	}
}
