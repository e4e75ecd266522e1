package rules_test

// The Panther peer suite (issue 17.4): every identity rule test of
// panther-analysis for a vendor Vigil imports (Okta, Google Workspace,
// GitHub, AWS CloudTrail, Auth0; testdata/panther/peers.json, see its
// README) goes the way a user's import goes — the vendor's decoder, the
// ingest normalisation and validation, the enrichers a server with the
// default configuration runs — then through the built-in pack, and our
// verdict is compared with Panther's.
//
// A Panther rule test is one log record and whether the rule's Python
// function matches it. Panther's backend then alerts when Threshold
// matches fall within the dedup window; so a test of a rule with a
// threshold is replayed that many times, a second apart, as the backend
// would see it. Our side of the comparison is the set of our rules that
// cover the same behaviour (peers below): Panther expects an alert ↔ one
// of them raises a finding. Each disagreement has a reason kept with the
// rule, and the table of docs/detection-quality.md is written from the
// run (-update) and checked against it.
//
// Every record also runs through the built-ins with the opt-in
// vendor-alerts pack (panther_pack_test.go), scored on the tests the
// catalog can express; that second table must show at least 95 %.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/detect/rulelang"
	"github.com/vigilhq/vigil/internal/enrich"
	"github.com/vigilhq/vigil/internal/enrich/iprep"
	"github.com/vigilhq/vigil/internal/enrich/useragent"
	"github.com/vigilhq/vigil/internal/importer"
	"github.com/vigilhq/vigil/internal/importer/auth0"
	"github.com/vigilhq/vigil/internal/importer/cloudtrail"
	"github.com/vigilhq/vigil/internal/importer/github"
	"github.com/vigilhq/vigil/internal/importer/gws"
	"github.com/vigilhq/vigil/internal/importer/okta"
	"github.com/vigilhq/vigil/internal/rules"
)

// packName is the opt-in pack of the second run ("built-ins +
// vendor-alerts").
const packName = "vendor-alerts"

const (
	packBegin = "<!-- panther-pack:begin (written by go test ./internal/rules -run TestPantherPeers -update) -->"
	packEnd   = "<!-- panther-pack:end -->"
)

const (
	peersDoc   = "../../docs/detection-quality.md"
	peersBegin = "<!-- panther:begin (written by go test ./internal/rules -run TestPantherPeers -update) -->"
	peersEnd   = "<!-- panther:end -->"
)

// peerDecoders are the importers, by the vendor names of peers.json.
var peerDecoders = map[string]importer.Decoder{
	"okta": okta.Decode, "gws": gws.Decode, "github": github.Decode,
	"cloudtrail": cloudtrail.Decode, "auth0": auth0.Decode,
}

var vendorNames = map[string]string{
	"okta": "Okta System Log", "gws": "Google Workspace", "github": "GitHub audit log",
	"cloudtrail": "AWS CloudTrail", "auth0": "Auth0",
}

// peerRule is one Panther rule of peers.json with its tests.
type peerRule struct {
	Vendor, RuleID, DisplayName, Severity, Source string
	Threshold                                     int
	Tests                                         []struct {
		Name           string
		ExpectedResult bool
		Mocks          []map[string]any
		Log            json.RawMessage
	}
}

// Why a Panther verdict and ours differ. Every disagreement has one.
const (
	// whyContext: Panther alerts on the one event; the behaviour is in our
	// catalog, but our rule needs context the single event lacks (a risky
	// login before the change, a second use of a session, a count).
	whyContext = "context"
	// whyCatalog: the behaviour is outside what our catalog expresses
	// (a vendor setting, an admin console action, a repository event).
	whyCatalog = "catalog"
	// whyVerdict: Panther relays the vendor's own verdict (ThreatInsight,
	// Google's suspicious-login flag, Auth0's breached password), which we
	// import as a custom action or metadata but do not alert on.
	whyVerdict = "verdict"
	// whyState: the Panther test feeds the rule a mocked state (a previous
	// session, a known-user list) that a single replayed event cannot give.
	whyState = "state"
)

// peer is how one Panther rule compares with our pack.
type peer struct {
	ours []string // our rules covering the same behaviour; none when the catalog cannot express it
	why  string   // the class of every disagreement (whyContext, …)
	note string   // the explanation, for the doc
}

// The context a whyContext rule's positive tests are run again with, to
// check that our rule does detect the behaviour once its context is there.
const (
	// ctxRiskyLogin: the actor's history (five logins from home over
	// eight days) and, ten minutes before the event, a success from a new
	// country after five failures (risk 45: new country 25, recent
	// failures 20).
	ctxRiskyLogin = "after a risky login"
	// ctxMoreFailures: the failure replayed as many times as brute-force
	// needs (10), a second apart.
	ctxMoreFailures = "10 times"
)

// peerContext is the context added for each whyContext rule; a rule not
// listed gets none (its records are not imported, or not catalog events).
var peerContext = map[string]string{
	"Okta.Global.MFA.Disabled":            ctxRiskyLogin,
	"Okta.AdminRoleAssigned":              ctxRiskyLogin,
	"Okta.APIKeyCreated":                  ctxRiskyLogin,
	"Okta.User.MFA.Reset.All":             ctxRiskyLogin,
	"Okta.User.MFA.Reset.Single":          ctxRiskyLogin,
	"Okta.Support.Reset":                  ctxRiskyLogin,
	"Google.Workspace.ManyDocsDownloaded": ctxRiskyLogin,
	"GSuite.TwoStepVerification":          ctxRiskyLogin,
	"GSuite.Workspace.DataExportCreated":  ctxRiskyLogin,
	"AWS.CloudTrail.RootAccessKeyCreated": ctxRiskyLogin,
	"AWS.CloudTrail.RootPasswordChanged":  ctxRiskyLogin,
	"AWS.Unsuccessful.MFA.attempt":        ctxMoreFailures,
	"AWS.Console.RootLoginFailed":         ctxMoreFailures,
}

// riskyLogin is the history and risky login of ev's actor before ev.
func riskyLogin(ev *audit.Event) []audit.Event {
	const ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	lat, lon := 37.7749, -122.4194
	plat, plon := 48.8566, 2.3522
	home := &audit.ClientGeo{Country: "US", City: "San Francisco", Latitude: &lat, Longitude: &lon}
	away := &audit.ClientGeo{Country: "FR", City: "Paris", Latitude: &plat, Longitude: &plon}
	login := func(n int, at time.Time, ip string, geo *audit.ClientGeo, action string) audit.Event {
		e := audit.Event{Tenant: "acme", Action: action, Time: at, Actor: ev.Actor,
			Context: audit.Context{IP: netip.MustParseAddr(ip), UserAgent: ua, Geo: geo}}
		if action == audit.ActionLoginSuccess {
			e.Context.SessionID, e.Context.AuthMethod = fmt.Sprintf("ctx-session-%d", n), "password"
		} else {
			e.Reason = "invalid_password"
		}
		return e
	}
	var out []audit.Event
	for d := range 5 {
		out = append(out, login(d, ev.Time.Add(-time.Duration(14-2*d)*24*time.Hour), "136.24.229.58", home, audit.ActionLoginSuccess))
	}
	for i := range 5 {
		out = append(out, login(0, ev.Time.Add(-16*time.Minute+time.Duration(i)*time.Minute), "194.88.246.242", away, audit.ActionLoginFailure))
	}
	return append(out, login(9, ev.Time.Add(-10*time.Minute), "194.88.246.242", away, audit.ActionLoginSuccess))
}

// whyInfo: Panther's rule is informational (every login, every console
// sign-in); by design we raise nothing for an ordinary event.
const whyInfo = "informational"

// whyClasses orders the classes for the doc, with how they read there.
var whyClasses = []struct{ id, text string }{
	{whyContext, "our rules cover the behaviour but need context the single event lacks"},
	{whyVerdict, "Panther relays the vendor's own verdict"},
	{whyState, "the test mocks state a replayed event cannot carry"},
	{whyCatalog, "outside the catalog: no rule of ours for it"},
	{whyInfo, "informational in Panther; nothing to detect"},
	{whyUpstream, "the Panther rule as published differs from the one its tests were written for"},
}

// Our rules by behaviour.
var (
	oursChange  = []string{"takeover-sequence", "login-takeover-change"}
	oursGrant   = []string{"privilege-escalation"}
	oursKey     = []string{"persistence-after-risky-login"}
	oursExport  = []string{"exfiltration-after-change"}
	oursFailure = []string{"brute-force", "lockout-attack"}
	oursStuff   = []string{"credential-stuffing", "credential-stuffing-subnet", "credential-stuffing-asn", "distributed-credential-stuffing", "stuffing-hit"}
	oursSession = []string{"session-hijack"}
)

// Reasons shared by several rules.
const (
	noteSetting  = "a change of the vendor's own security or tenant settings: imported as the vendor's action (a tenant rule can match it), no rule of our identity pack"
	noteNoRecord = "Panther's test records are behavioural aggregates without eventType or published: nothing an importer can read"
	noteChange   = "one credential change alone is what users do every day; takeover-sequence needs two after a risky login (or three), login-takeover-change a risky login 15 minutes before"
)

// peers maps each Panther rule to ours. A Panther rule missing here is an
// error, so a new rule in peers.json gets a decision.
var peers = map[string]peer{
	// Okta System Log.
	"Okta.Support.Access":                         {nil, whyCatalog, "Okta support granted impersonation: imported as okta.user.session.impersonation.grant, no rule of ours"},
	"Okta.ADAgent.AuthenticationAnomaly.ZScore":   {nil, whyCatalog, noteNoRecord},
	"Okta.ADAgent.TokenAbuse.Behavioral":          {nil, whyCatalog, noteNoRecord},
	"Okta.Global.MFA.Disabled":                    {oursChange, whyContext, "the org-wide factor deactivation imports as auth.mfa.removed; " + noteChange},
	"Okta.AdminRoleAssigned":                      {oursGrant, whyContext, "a grant alone is routine admin work; privilege-escalation needs a risky login or credential change of the granting actor before it"},
	"Okta.Anonymizing.VPN.Login":                  {[]string{"bot-infrastructure", "new-location"}, whyVerdict, "Panther reads Okta's securityContext.isProxy; our VPN fact comes from enrichment's IP lists (none by default) and the importer does not carry Okta's flag; and the test events are failed logins"},
	"Okta.APIKeyCreated":                          {oursKey, whyContext, "persistence-after-risky-login needs a risky login (risk ≥ 40) of the same actor within the hour before"},
	"Okta.APIKeyRevoked":                          {nil, whyCatalog, "a revocation imports as api_key.revoked; no rule of ours calls a revocation a threat"},
	"Okta.Refresh.Access.Token.Reuse":             {oursSession, whyVerdict, "Okta's own reuse detection (app.oauth2.token.detect_reuse) is imported as a custom action; session-hijack compares two uses of a session itself"},
	"Okta.App.Unauthorized.Access.Attempt":        {nil, whyCatalog, "an app-assignment denial is not a login failure in our catalog (kept okta.app.generic.unauth_app_access_attempt)"},
	"Okta.Group.Admin.Role.Assigned":              {oursGrant, whyCatalog, "a privilege granted to a group is no account's role change: kept okta.group.privilege.grant, which privilege-escalation does not read"},
	"Okta.Identity.Provider.Created.Modified":     {nil, whyCatalog, noteSetting},
	"Okta.Identity.Provider.SignIn":               {nil, whyCatalog, "a sign-in through an external IdP stays okta.user.authentication.auth_via_idp; the session start that follows is our login"},
	"Okta.Login.Success":                          {nil, whyInfo, "Panther's rule is informational: it reports every successful login"},
	"Okta.Login.Without.Push.Marker":              {nil, whyCatalog, "needs a customer-specific user-agent marker; no rule of ours"},
	"Okta.New.Behavior.Accessing.Admin.Console":   {[]string{"new-location"}, whyVerdict, "Okta's own behaviour verdicts (debugData.behaviors) are not read; our new-location needs the actor's own history"},
	"Okta.Org2org.Creation.Modification":          {nil, whyCatalog, noteSetting},
	"Okta.PasswordAccess":                         {nil, whyCatalog, "revealing another user's app password is kept okta.application.user_membership.show_password; no rule of ours"},
	"Okta.Password.Extraction.via.SCIM":           {nil, whyCatalog, noteSetting},
	"Okta.Phishing.Attempt.Blocked.FastPass":      {nil, whyVerdict, "Okta's FastPass verdict on a phishing attempt, kept as a custom action"},
	"Okta.PotentiallyStolenSession":               {oursSession, whyState, "the test mocks the session's earlier state, and its records carry the published time \"redacted\": not importable"},
	"Okta.Rate.Limits":                            {nil, whyCatalog, "rate-limit notices are operational: no rule of ours"},
	"Okta.SkeletonKeyBypass.Behavioral":           {nil, whyCatalog, noteNoRecord},
	"Okta.SSO.to.AWS":                             {nil, whyCatalog, "the test records have no published time: not importable; an SSO hand-off to an app is not a takeover signal for us"},
	"Okta.Support.Reset":                          {oursChange, whyContext, "one test record has no published time: not importable; the other is Okta support starting a password reset (stage requested, actor system@okta.com): our rules count a completed reset, so even after a risky login of that actor nothing fires"},
	"Okta.SWA.BulkAccess.Behavioral":              {nil, whyCatalog, noteNoRecord},
	"Okta.SWA.OffHoursAccess.Behavioral":          {[]string{"unusual-hour"}, whyCatalog, noteNoRecord},
	"Okta.ThreatInsight.Security.Threat.Detected": {nil, whyVerdict, "Okta ThreatInsight's own verdict, kept as okta.security.threat.detected"},
	"Okta.User.Account.Locked":                    {oursFailure, whyContext, "one lockout is usually the user's own; lockout-attack needs three accounts locked from one source (and Okta's user.account.lock stays a custom action: the failed logins before it are what we count)"},
	"Okta.User.MFA.Factor.Suspend":                {nil, whyCatalog, "a suspended factor is not removed: kept okta.user.mfa.factor.suspend"},
	"Okta.User.MFA.Reset.Single":                  {oursChange, whyContext, "the positive test record has no published time: not importable; " + noteChange},
	"Okta.User.MFA.Reset.All":                     {oursChange, whyContext, noteChange},
	"Okta.User.Reported.Suspicious.Activity":      {nil, whyVerdict, "the user's own report of suspicious activity, kept as a custom action"},

	// Google Workspace.
	"Google.Workspace.Admin.Custom.Role":             {nil, whyCatalog, noteSetting},
	"Google.Workspace.Advanced.Protection.Program":   {nil, whyCatalog, noteSetting},
	"Google.Workspace.ManyDocsDownloaded":            {oursExport, whyContext, "replayed 20 times (Panther's threshold): downloads alone are everyday work; exfiltration-after-change needs a credential change or risky login of the actor within 24 hours before"},
	"GSuite.AdvancedProtection":                      {nil, whyCatalog, "the test records have no id.time: not importable; " + noteSetting},
	"GSuite.GovernmentBackedAttack":                  {nil, whyVerdict, "Google's government-backed-attack warning; the test records have no id.time: not importable"},
	"GSuite.IsSuspiciousTag":                         {nil, whyVerdict, "Google's is_suspicious flag; the test records have no id.time: not importable"},
	"GSuite.LeakedPassword":                          {nil, whyVerdict, "Google's leaked-password verdict; the test records have no id.time: not importable"},
	"GSuite.LoginType":                               {nil, whyCatalog, "a login of a type the customer did not approve is a tenant policy; Google sign-ins carry no user agent and stay gws.login.login_success (see the importer)"},
	"GSuite.SuspiciousLogins":                        {nil, whyVerdict, "Google's suspicious-login verdict; the test records have no id.time: not importable"},
	"GSuite.TwoStepVerification":                     {oursChange, whyContext, "the test records have no id.time: not importable; " + noteChange},
	"GSuite.UserSuspended":                           {nil, whyVerdict, "Google suspending an account for suspicious activity; the test records have no id.time: not importable"},
	"Google.Workspace.OAuth.Privileged.Scopes":       {nil, whyCatalog, "OAuth grants to third-party apps are kept gws.token.authorize; no rule of ours reads scopes"},
	"GSuite.Workspace.DataExportCreated":             {oursExport, whyContext, "the export's start imports as data.exported and its completion stays custom (one export, one event), so with context only the start is detected; exfiltration-after-change needs a credential change or risky login of the actor within 24 hours before"},
	"GSuite.Workspace.PasswordEnforceStrongDisabled": {nil, whyCatalog, noteSetting},
	"GSuite.Workspace.PasswordReuseEnabled":          {nil, whyCatalog, noteSetting},

	// GitHub audit log.
	"GitHub.Org.AuthChange":          {nil, whyCatalog, noteSetting},
	"GitHub.Org.IpAllowlist":         {nil, whyCatalog, noteSetting},
	"GitHub.Org.Moderators.Add":      {nil, whyCatalog, "organisation roles are kept github.organization_moderators.add_user: the record names no account role our catalog can read"},
	"Github.Repo.CollaboratorChange": {nil, whyCatalog, "repository membership is kept github.repo.add_member; no rule of ours"},
	"GitHub.Repo.InitialAccess":      {nil, whyState, "the test mocks Panther's store of earlier repository accesses; we keep no per-repository history"},
	"GitHub.Team.Modified":           {nil, whyCatalog, "team changes are kept github.team.*; no rule of ours"},
	"GitHub.User.AccessKeyCreated":   {oursKey, whyCatalog, "an SSH key is imported as github.public_key.create, not api_key.created, so persistence-after-risky-login does not read it"},
	"GitHub.User.RoleUpdated":        {oursGrant, whyCatalog, "github.org.update_member names no new role: kept custom, so privilege-escalation does not read it"},

	// AWS CloudTrail.
	"AWS.CloudTrail.LoginProfileCreatedOrModified": {nil, whyCatalog, "an administrator setting another user's console password is kept aws.iam.update_login_profile; no rule of ours"},
	"AWS.CloudTrail.Password.Policy.Discovery":     {nil, whyCatalog, "reading the password policy is reconnaissance our catalog has no action for"},
	"AWS.CloudTrail.PasswordSpraying":              {oursStuff, whyContext, "the test records have no eventTime: not importable; our stuffing rules count failures over many accounts"},
	"AWS.Unsuccessful.MFA.attempt":                 {oursFailure, whyContext, "replayed twice (Panther's threshold): brute-force needs 10 failures on the account within minutes"},
	"AWS.Console.GetSigninToken.Abuse":             {nil, whyCatalog, "federation tokens (signin GetSigninToken) are kept custom; no rule of ours"},
	"AWS.Console.LoginWithoutMFA":                  {nil, whyCatalog, "a password-only console login is a policy question: the importer keeps metadata.mfa_used, no rule of ours alerts on it"},
	"AWS.Console.LoginWithoutSAML":                 {nil, whyCatalog, "a non-SAML console login is a policy question; no rule of ours"},
	"AWS.Console.RootLogin":                        {nil, whyCatalog, "no rule of ours treats an account as privileged by its name (root); a tenant rule can"},
	"AWS.Console.RootLoginFailed":                  {oursFailure, whyContext, "replayed 5 times (Panther's threshold): brute-force needs 10 failures on the account"},
	"AWS.Console.Sign-In":                          {nil, whyInfo, "Panther's rule reports every console sign-in"},
	"AWS.CloudTrail.RootAccessKeyCreated":          {oursKey, whyContext, "persistence-after-risky-login needs a risky login (risk ≥ 40) of the same actor within the hour before"},
	"AWS.Root.Activity":                            {nil, whyCatalog, "no rule of ours treats an account as privileged by its name (root)"},
	"AWS.CloudTrail.RootPasswordChanged":           {oursChange, whyContext, noteChange},
	"AWS.User.Login.Profile.Modified":              {nil, whyCatalog, "an administrator setting another user's console password is kept aws.iam.update_login_profile; no rule of ours"},
	"Sign-in.with.AWS.CLI.prompt":                  {nil, whyInfo, "Panther's rule reports every CLI sign-in; its test record's eventTime is \"...\": not importable"},

	// Auth0.
	"Auth0.AttackProtection.Disabled":     {nil, whyCatalog, noteSetting},
	"Auth0.BotDetection.Disabled":         {nil, whyCatalog, noteSetting},
	"Auth0.CIC.Credential.Stuffing":       {oursStuff, whyContext, "one failed cross-origin authentication without a user: kept custom (a login failure needs an actor), and our stuffing rules count many"},
	"Auth0.Custom.Role.Created":           {nil, whyCatalog, noteSetting},
	"Auth0.Delete.TenantMember":           {nil, whyCatalog, noteSetting},
	"Auth0.FraudRisk.Volume":              {nil, whyVerdict, "Auth0's breached-password verdict at sign-up, replayed 20 times (Panther's threshold); sign-ups are not logins"},
	"Auth0.Integration.Installed":         {nil, whyCatalog, noteSetting},
	"Auth0.Leaked.Password.Login.Attempt": {oursStuff, whyVerdict, "Auth0's breached-password verdict on one login (imported as auth.login.failure); our stuffing rules count failures over many accounts"},
	"Auth0.Limits":                        {oursFailure, whyVerdict, "Auth0 blocked the account after too many attempts (imported as auth.login.failure, account_locked); brute-force counts the failures themselves, lockout-attack needs three accounts"},
	"Auth0.MFA.Factor.Setting.Enabled":    {nil, whyCatalog, noteSetting},
	"Auth0.MFA.Policy.Disabled":           {nil, whyCatalog, noteSetting},
	"Auth0.MFA.Policy.Enabled":            {nil, whyCatalog, noteSetting},
	"Auth0.MFA.Risk.Assessment.Disabled":  {nil, whyCatalog, noteSetting},
	"Auth0.MFA.Risk.Assessment.Enabled":   {nil, whyCatalog, noteSetting},
	"Auth0.NewAdmin.Invitation":           {nil, whyCatalog, noteSetting},
	"Auth0.Post.Login.Action.Flow":        {nil, whyCatalog, noteSetting},
	"Auth0.PushNotification.Fatigue":      {nil, whyCatalog, "replayed 5 times (Panther's threshold): MFA push notifications sent (gd_send_pn) have no catalog action"},
	"Auth0.Rapid.DynamicClient.Creation":  {nil, whyCatalog, noteSetting},
	"Auth0.SamePhone.MultipleUsers.MFA":   {nil, whyState, "the test mocks Panther's store of phone numbers per user; we keep no such index"},
	"Auth0.RefreshToken.Reuse":            {oursSession, whyVerdict, "Auth0's own refresh-token reuse detection (ferrt), kept as a custom action"},
	"Auth0.User.Invitation.Created":       {nil, whyCatalog, noteSetting},
	"Auth0.User.Joined.Tenant":            {nil, whyCatalog, noteSetting},
}

// peerOutcome is what one Panther test gave.
type peerOutcome struct {
	importErr  string   // the importer's or the ingest validation's refusal
	action     string   // the action the importer gave
	fired      []string // every rule of ours that raised a finding
	aboveLow   []string // those above low severity
	peerFired  bool     // one of the peer rules fired
	withCtx    bool     // a peer rule fired once the context was added
	expected   bool
	replayedAs int
	// The second run, with the vendor-alerts pack (see packPeers).
	stateMock     bool     // the test mocks Panther's state: not expressible
	packFired     []string // every rule that fired with the pack on
	packPeerFired bool     // one of the pack peers fired
}

// peerResult aggregates one Panther rule.
type peerResult struct {
	rule                   peerRule
	tests, imported        int
	positives, negatives   int // imported ones
	agreePos, agreeNeg     int
	ctxPositives, ctxAgree int // positives run again with peerContext
	refusals               map[string]int
	actions                []string
	firedOnPos, firedOnNeg []string
	negAboveLow            []string
	outcomes               []peerOutcome
	// Expressible tests (imported, no mocked state) and how both runs
	// agree on them.
	exp            expTotals
	packFiredOnPos []string
	packFiredOnNeg []string
	stateMocked    int
}

// expTotals counts the expressible tests of one rule or many: imported
// records whose verdict needs no mocked state, and how many of them each
// run agrees with.
type expTotals struct {
	rules, positives, negatives int
	builtinPos, builtinNeg      int // agreement, built-ins alone
	packPos, packNeg            int // agreement, built-ins + the pack
}

func (e *expTotals) add(o expTotals) {
	e.rules += o.rules
	e.positives += o.positives
	e.negatives += o.negatives
	e.builtinPos += o.builtinPos
	e.builtinNeg += o.builtinNeg
	e.packPos += o.packPos
	e.packNeg += o.packNeg
}

func (e expTotals) tests() int        { return e.positives + e.negatives }
func (e expTotals) builtinAgree() int { return e.builtinPos + e.builtinNeg }
func (e expTotals) packAgree() int    { return e.packPos + e.packNeg }

func (r *peerResult) agree() int { return r.agreePos + r.agreeNeg }

func loadPeers(t *testing.T) []peerRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "panther", "peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var prs []peerRule
	if err := json.Unmarshal(data, &prs); err != nil {
		t.Fatal(err)
	}
	return prs
}

// peerPipeline is the enrichment a server with the default configuration
// runs: network facts without lists, the record's own location, and
// uap-core user agents.
func peerPipeline(t *testing.T) *enrich.Pipeline {
	t.Helper()
	network, err := iprep.New(iprep.Options{ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { network.Close() })
	ua, err := useragent.New(useragent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := enrich.New(enrich.Options{Enrichers: []audit.Enricher{network, clientGeo{}, ua}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// importPeer takes one Panther log record the way `vigil import` does:
// the vendor's decoder, then the ingest normalisation and validation.
func importPeer(dec importer.Decoder, raw []byte) (*audit.Event, error) {
	ev, err := dec(raw)
	if err != nil {
		return nil, err
	}
	ev.Tenant = "acme"
	now := ev.Time.Add(time.Hour)
	if ev.Time.IsZero() {
		now = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	ev.Normalize(now)
	if err := ev.Validate(now); err != nil {
		return nil, err
	}
	return ev, nil
}

// refusal is an import error's problems, for the table.
func refusal(err error) string {
	ps := audit.ErrorProblems(err)
	if len(ps) == 0 {
		return err.Error()
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return strings.Join(msgs, "; ")
}

func runPeer(t *testing.T, p *enrich.Pipeline, pr peerRule, pe peer, withPack []*rulelang.Rule) *peerResult {
	t.Helper()
	res := &peerResult{rule: pr, refusals: map[string]int{}}
	dec := peerDecoders[pr.Vendor]
	pp := packPeers[pr.RuleID]
	for _, tc := range pr.Tests {
		res.tests++
		o := peerOutcome{expected: tc.ExpectedResult, replayedAs: max(pr.Threshold, 1), stateMock: mocksState(tc.Mocks)}
		if o.stateMock {
			res.stateMocked++
		}
		ev, err := importPeer(dec, tc.Log)
		if err != nil {
			o.importErr = refusal(err)
			res.refusals[o.importErr]++
			res.outcomes = append(res.outcomes, o)
			continue
		}
		res.imported++
		o.action = ev.Action
		if !slices.Contains(res.actions, ev.Action) {
			res.actions = append(res.actions, ev.Action)
		}
		_ = p.Enrich(t.Context(), ev)
		events := make([]audit.Event, o.replayedAs)
		for i := range events {
			events[i] = *ev
			events[i].ID = fmt.Sprintf("panther-%d", i+1)
			events[i].Time = ev.Time.Add(time.Duration(i) * time.Second)
		}
		for _, f := range runPack(t, events) {
			if !slices.Contains(o.fired, f.RuleID) {
				o.fired = append(o.fired, f.RuleID)
			}
			if f.Severity.Rank() > audit.SeverityLow.Rank() && !slices.Contains(o.aboveLow, f.RuleID) {
				o.aboveLow = append(o.aboveLow, f.RuleID)
			}
			if slices.Contains(pe.ours, f.RuleID) {
				o.peerFired = true
			}
		}
		for _, f := range runRules(t, withPack, slices.Clone(events)) {
			if !slices.Contains(o.packFired, f.RuleID) {
				o.packFired = append(o.packFired, f.RuleID)
			}
			if slices.Contains(pp.ours, f.RuleID) {
				o.packPeerFired = true
			}
		}
		if !o.stateMock {
			agreeB, agreeP := o.peerFired == tc.ExpectedResult, o.packPeerFired == tc.ExpectedResult
			if tc.ExpectedResult {
				res.exp.positives++
				res.exp.builtinPos += b2i(agreeB)
				res.exp.packPos += b2i(agreeP)
				res.packFiredOnPos = append(res.packFiredOnPos, o.packFired...)
			} else {
				res.exp.negatives++
				res.exp.builtinNeg += b2i(agreeB)
				res.exp.packNeg += b2i(agreeP)
				res.packFiredOnNeg = append(res.packFiredOnNeg, o.packFired...)
			}
		}
		if ctx := peerContext[pr.RuleID]; ctx != "" && tc.ExpectedResult {
			res.ctxPositives++
			var withCtx []audit.Event
			switch ctx {
			case ctxRiskyLogin:
				withCtx = riskyLogin(ev)
				for i := range withCtx {
					_ = p.Enrich(t.Context(), &withCtx[i])
				}
				withCtx = append(withCtx, events...)
			case ctxMoreFailures:
				for i := range 10 {
					e := *ev
					e.ID, e.Time = fmt.Sprintf("panther-ctx-%d", i+1), ev.Time.Add(time.Duration(i)*time.Second)
					withCtx = append(withCtx, e)
				}
			}
			for _, f := range runPack(t, withCtx) {
				t.Logf("%s / %q with context (%s): %s: %s", pr.RuleID, tc.Name, ctx, f.RuleID, f.Explanation)
				if slices.Contains(pe.ours, f.RuleID) {
					o.withCtx = true
				}
			}
			if o.withCtx {
				res.ctxAgree++
			}
		}
		if tc.ExpectedResult {
			res.positives++
			if o.peerFired {
				res.agreePos++
			}
			res.firedOnPos = append(res.firedOnPos, o.fired...)
		} else {
			res.negatives++
			if !o.peerFired {
				res.agreeNeg++
			}
			res.firedOnNeg = append(res.firedOnNeg, o.fired...)
			res.negAboveLow = append(res.negAboveLow, o.aboveLow...)
		}
		t.Logf("%s / %q (Panther %v, x%d): %s → fired %v (with context: %v; with %s: %v, state mocked: %v)", pr.RuleID, tc.Name, tc.ExpectedResult, o.replayedAs, o.action, o.fired, o.withCtx, packName, o.packFired, o.stateMock)
		res.outcomes = append(res.outcomes, o)
	}
	res.firedOnPos, res.firedOnNeg, res.negAboveLow = dedup(res.firedOnPos), dedup(res.firedOnNeg), dedup(res.negAboveLow)
	res.packFiredOnPos, res.packFiredOnNeg = dedup(res.packFiredOnPos), dedup(res.packFiredOnNeg)
	if res.exp.tests() > 0 {
		res.exp.rules = 1
	}
	for why, n := range res.refusals {
		t.Logf("%s: %d not importable: %s", pr.RuleID, n, why)
	}
	return res
}

// peerTotals sums results.
type peerTotals struct {
	rules, tests, imported, positives, negatives, agreePos, agreeNeg int
	ctxPositives, ctxAgree                                           int
}

func (s *peerTotals) add(r *peerResult) {
	s.rules++
	s.tests += r.tests
	s.imported += r.imported
	s.positives += r.positives
	s.negatives += r.negatives
	s.agreePos += r.agreePos
	s.agreeNeg += r.agreeNeg
	s.ctxPositives += r.ctxPositives
	s.ctxAgree += r.ctxAgree
}

func (s peerTotals) agree() int { return s.agreePos + s.agreeNeg }

// pct is n/of as a whole per cent, or "—" when of is 0.
func pct(n, of int) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%d %%", n*100/of)
}

func frac(n, of int) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%d/%d (%s)", n, of, pct(n, of))
}

// TestPantherPeers runs Panther's identity rule tests through our importers
// and the built-in pack and keeps the agreement table of
// docs/detection-quality.md current:
//
//	go test ./internal/rules -run TestPantherPeers -v       # every test's verdicts
//	go test ./internal/rules -run TestPantherPeers -update  # rewrites the table
func TestPantherPeers(t *testing.T) {
	prs := loadPeers(t)
	p := peerPipeline(t)
	ours := map[string]bool{}
	for _, r := range rules.MustBuiltin() {
		ours[r.ID] = true
	}
	withPack, err := rules.Load([]string{packName})
	if err != nil {
		t.Fatal(err)
	}
	oursWithPack := map[string]bool{}
	for _, r := range withPack {
		oursWithPack[r.ID] = true
	}
	classes := map[string]bool{}
	for _, c := range whyClasses {
		classes[c.id] = true
	}
	seen := map[string]bool{}
	var results []*peerResult
	for _, pr := range prs {
		if peerDecoders[pr.Vendor] == nil {
			t.Fatalf("%s: no importer for vendor %q", pr.RuleID, pr.Vendor)
		}
		pe, ok := peers[pr.RuleID]
		if !ok {
			t.Errorf("%s: no entry in peers: decide which of our rules cover it", pr.RuleID)
		}
		seen[pr.RuleID] = true
		for _, id := range pe.ours {
			if !ours[id] {
				t.Errorf("%s: peers names %s, which is not a built-in rule", pr.RuleID, id)
			}
		}
		if ok && (!classes[pe.why] || pe.note == "") {
			t.Errorf("%s: peers gives the class %q and note %q: every Panther rule needs a known class and an explanation", pr.RuleID, pe.why, pe.note)
		}
		pp := packPeers[pr.RuleID]
		for _, id := range pp.ours {
			if !oursWithPack[id] {
				t.Errorf("%s: packPeers names %s, which is neither a built-in rule nor one of %s", pr.RuleID, id, packName)
			}
		}
		res := runPeer(t, p, pr, pe, withPack)
		results = append(results, res)
		// Every disagreement of the second run keeps a class and an
		// explanation, and an explanation of one that no longer occurs
		// is stale.
		switch disagree := res.exp.tests() - res.exp.packAgree(); {
		case disagree > 0 && (!classes[pp.why] || pp.note == ""):
			t.Errorf("%s: %d expressible tests disagree with %s on; packPeers needs a known class and an explanation", pr.RuleID, disagree, packName)
		case disagree == 0 && pp.note != "":
			t.Errorf("%s: every expressible test agrees with %s on; drop the stale explanation in packPeers", pr.RuleID, packName)
		}
		// A negative that raises anything above low would be a false
		// alarm an analyst has to look at.
		if len(res.negAboveLow) > 0 {
			t.Errorf("%s: on Panther-negative tests ours raised %v above low", pr.RuleID, res.negAboveLow)
		}
	}
	for id := range peers {
		if !seen[id] {
			t.Errorf("peers has %s, which peers.json does not hold", id)
		}
	}

	var all, expressible peerTotals
	var exp expTotals
	for _, r := range results {
		all.add(r)
		if len(peers[r.rule.RuleID].ours) > 0 {
			expressible.add(r)
		}
		exp.add(r.exp)
	}
	t.Logf("%d Panther rules with %d expressible tests: built-ins agree on %s, built-ins + %s on %s (positives %s, negatives %s)", exp.rules, exp.tests(),
		frac(exp.builtinAgree(), exp.tests()), packName, frac(exp.packAgree(), exp.tests()), frac(exp.packPos, exp.positives), frac(exp.packNeg, exp.negatives))
	t.Logf("%d Panther rules, %d tests, %d imported; agreement %s (positives %s, negatives %s)", all.rules, all.tests, all.imported,
		frac(all.agree(), all.imported), frac(all.agreePos, all.positives), frac(all.agreeNeg, all.negatives))

	// Honest bounds. On Panther's negatives we stay quiet; the figures may
	// only improve (raise the floors when they do).
	const (
		minNegativeAgreement = 95 // per cent of imported Panther-negative tests
		minImported          = 209
		minAgreed            = 101
		minAgreedInContext   = 11 // Panther-positive records ours detect with the context added
	)
	if all.agreeNeg*100 < minNegativeAgreement*all.negatives {
		t.Errorf("ours fired on %d of %d Panther-negative tests: agreement below %d %%", all.negatives-all.agreeNeg, all.negatives, minNegativeAgreement)
	}
	if all.imported < minImported {
		t.Errorf("%d Panther tests imported, fewer than the %d before: an importer refuses records it took", all.imported, minImported)
	}
	if all.agree() < minAgreed {
		t.Errorf("%d tests agree, fewer than the %d before", all.agree(), minAgreed)
	}
	if expressible.ctxAgree < minAgreedInContext {
		t.Errorf("with the context added, ours detect %d Panther-positive records, fewer than the %d before", expressible.ctxAgree, minAgreedInContext)
	}
	// The second run: on the tests the catalog can express, the
	// built-ins with the pack agree with Panther at least 95 % of the
	// time, and the pack's negatives may only improve.
	const (
		minPackAgreement   = 95  // per cent of expressible tests
		minPackNegAgreed   = 88  // expressible Panther-negative tests on which no pack peer fires
		minExpressibleTest = 196 // expressible tests: an importer that refuses records shrinks the set
	)
	if exp.packAgree()*100 < minPackAgreement*exp.tests() {
		t.Errorf("built-ins + %s agree with Panther on %s of the expressible tests, below %d %%", packName, frac(exp.packAgree(), exp.tests()), minPackAgreement)
	}
	if exp.packNeg < minPackNegAgreed {
		t.Errorf("built-ins + %s agree on %d expressible Panther-negative tests, fewer than the %d before", packName, exp.packNeg, minPackNegAgreed)
	}
	if exp.tests() < minExpressibleTest {
		t.Errorf("%d expressible tests, fewer than the %d before", exp.tests(), minExpressibleTest)
	}
	syncDocTable(t, peersDoc, peersBegin, peersEnd, peersTable(results, all, expressible))
	syncDocTable(t, peersDoc, packBegin, packEnd, packTable(results, exp))
}

// peersTable renders the doc's summary and per-rule tables.
func peersTable(results []*peerResult, all, expressible peerTotals) string {
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	byVendor := map[string]*peerTotals{}
	byClass := map[string]*peerTotals{}
	var vendors []string
	for _, r := range results {
		v := r.rule.Vendor
		if byVendor[v] == nil {
			byVendor[v] = &peerTotals{}
			vendors = append(vendors, v)
		}
		byVendor[v].add(r)
		c := peers[r.rule.RuleID].why
		if byClass[c] == nil {
			byClass[c] = &peerTotals{}
		}
		byClass[c].add(r)
	}
	row("", "Panther rules", "tests", "imported", "agree on Panther-positive", "agree on Panther-negative", "agreement")
	row("---", "---:", "---:", "---:", "---:", "---:", "---:")
	tot := func(name string, s peerTotals) {
		row(name, fmt.Sprint(s.rules), fmt.Sprint(s.tests), fmt.Sprint(s.imported), frac(s.agreePos, s.positives), frac(s.agreeNeg, s.negatives), frac(s.agree(), s.imported))
	}
	for _, v := range vendors {
		tot(vendorNames[v], *byVendor[v])
	}
	tot("**all**", all)
	tot("rules a rule of ours covers", expressible)
	row("… their Panther-positive records with the context our rule needs", "", "", "", frac(expressible.ctxAgree, expressible.ctxPositives), "", "")
	for _, c := range whyClasses {
		if s := byClass[c.id]; s != nil {
			tot("class *"+c.id+"*: "+c.text, *s)
		}
	}
	b.WriteString("\n")
	row("Panther rule", "tests (imported)", "importer refused", "Panther alerts on", "ours fired", "agreement", "our peers", "with context", "class", "why")
	row("---", "---:", "---", "---:", "---", "---:", "---", "---", "---", "---")
	for _, r := range results {
		pe := peers[r.rule.RuleID]
		name := r.rule.RuleID
		if r.rule.Threshold > 1 {
			name += fmt.Sprintf(" (×%d)", r.rule.Threshold)
		}
		fired := "nothing"
		if len(r.firedOnPos)+len(r.firedOnNeg) > 0 {
			fired = fmt.Sprintf("on +: %s; on −: %s", strings.Join(r.firedOnPos, ", "), strings.Join(r.firedOnNeg, ", "))
		}
		peersCell := "—"
		if len(pe.ours) > 0 {
			peersCell = "`" + strings.Join(pe.ours, "`, `") + "`"
		}
		why := pe.note
		if r.agree() == r.imported && r.imported == r.tests {
			why = "agrees: " + why
		}
		withCtx := "—"
		if ctx := peerContext[r.rule.RuleID]; ctx != "" && r.ctxPositives > 0 {
			withCtx = fmt.Sprintf("%d of %d, %s", r.ctxAgree, r.ctxPositives, ctx)
		}
		var refused []string
		for why, n := range r.refusals {
			refused = append(refused, fmt.Sprintf("%d: %s", n, strings.ReplaceAll(why, "|", "/")))
		}
		slices.Sort(refused)
		refusedCell := "—"
		if len(refused) > 0 {
			refusedCell = strings.Join(refused, "; ")
		}
		row(name, fmt.Sprintf("%d (%d)", r.tests, r.imported), refusedCell, fmt.Sprintf("%d of %d", r.positives, r.imported), fired,
			frac(r.agree(), r.imported), peersCell, withCtx, pe.why, why)
	}
	return b.String()
}
