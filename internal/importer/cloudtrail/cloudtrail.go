// Package cloudtrail imports AWS CloudTrail records: one element of a
// trail file's Records array (or one line of a CloudTrail Lake or
// EventBridge export of the same object) becomes one audit.Event. Console
// sign-ins and IAM credential events map to the catalog; every other API
// call is kept as aws.<service>.<event_name>. docs/importers.md has the
// mapping table.
package cloudtrail

import (
	"strings"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/importer"
)

// Format is this importer's name in `vigil import` and /v1/import/{format}.
const Format = "cloudtrail"

type record struct {
	EventID      string `json:"eventID"`
	EventTime    string `json:"eventTime"`
	EventSource  string `json:"eventSource"`
	EventName    string `json:"eventName"`
	EventType    string `json:"eventType"`
	ReadOnly     *bool  `json:"readOnly"`
	AWSRegion    string `json:"awsRegion"`
	SourceIP     string `json:"sourceIPAddress"`
	UserAgent    string `json:"userAgent"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
	RequestID    string `json:"requestID"`
	Recipient    string `json:"recipientAccountId"`
	UserIdentity struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
		ARN         string `json:"arn"`
		AccountID   string `json:"accountId"`
		AccessKeyID string `json:"accessKeyId"`
		UserName    string `json:"userName"`
		InvokedBy   string `json:"invokedBy"`
		Session     *struct {
			Issuer *struct {
				UserName string `json:"userName"`
				ARN      string `json:"arn"`
			} `json:"sessionIssuer"`
			Attributes *struct {
				MFAAuthenticated string `json:"mfaAuthenticated"`
			} `json:"attributes"`
		} `json:"sessionContext"`
	} `json:"userIdentity"`
	Request  map[string]any `json:"requestParameters"`
	Response map[string]any `json:"responseElements"`
	Extra    map[string]any `json:"additionalEventData"`
}

// Decode turns one CloudTrail record into an event.
func Decode(raw []byte) (*audit.Event, error) {
	var r record
	if err := importer.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	var ps importer.Problems
	if r.EventName == "" {
		ps.Add("eventName", "eventName is required")
	}
	if r.EventSource == "" {
		ps.Add("eventSource", "eventSource is required")
	}
	t, ok := importer.Time(r.EventTime)
	switch {
	case r.EventTime == "":
		ps.Add("eventTime", "eventTime is required")
	case !ok:
		ps.Add("eventTime", "eventTime %q is not a timestamp such as 2024-01-02T03:04:05Z", importer.Text(r.EventTime, 64))
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	ui := r.UserIdentity
	ev := &audit.Event{
		ID:   importer.ID("cloudtrail", r.EventID, raw),
		Time: t,
		Actor: audit.Actor{ID: first(ui.ARN, ui.UserName, ui.PrincipalID, ui.AccountID),
			Name: first(ui.UserName, issuerName(&r))},
		Context: audit.Context{
			// sourceIPAddress is a service name ("AWS Internal",
			// "ec2.amazonaws.com") for calls made inside AWS: no IP then.
			IP:        importer.IP(r.SourceIP),
			UserAgent: r.UserAgent,
			RequestID: r.RequestID,
		},
		Metadata: map[string]any{"aws_event": importer.Text(r.EventSource+":"+r.EventName, 128)},
	}
	switch ui.Type {
	case "AWSService", "AWSAccount":
		ev.Actor.Type = audit.ActorService
	case "Root", "IAMUser", "AssumedRole", "FederatedUser", "IdentityCenterUser":
		ev.Actor.Type = audit.ActorUser
	}
	if ui.Type != "" {
		ev.Metadata["aws_identity_type"] = importer.Text(ui.Type, 64)
	}
	if r.Recipient != "" {
		ev.Metadata["aws_account"] = importer.Text(r.Recipient, 32)
	}
	if r.AWSRegion != "" {
		ev.Metadata["aws_region"] = importer.Text(r.AWSRegion, 32)
	}
	if !ev.Context.IP.IsValid() && r.SourceIP != "" {
		ev.Metadata["aws_source"] = importer.Text(r.SourceIP, 128)
	}
	keepFacts(&r, ev)
	if r.ErrorCode != "" || r.ErrorMessage != "" {
		ev.Outcome = audit.OutcomeFailure
		ev.Metadata["aws_error"] = importer.Text(strings.TrimSpace(r.ErrorCode+" "+r.ErrorMessage), 256)
	} else {
		ev.Outcome = audit.OutcomeSuccess
	}
	service := strings.TrimSuffix(r.EventSource, ".amazonaws.com")
	custom := importer.Action("aws", service, r.EventName)
	ev.Action = mapAction(&r, ev)
	if audit.InCatalog(ev.Action) {
		ev.Outcome = audit.OutcomeUnknown // the action's suffix decides
	} else {
		ev.Action = custom
	}
	importer.Finish(ev, Format, custom, raw)
	return ev, nil
}

// keepFacts keeps the facts of a record that rules read and the catalog
// has no field for: the record's eventType (AwsApiCall, AwsServiceEvent…)
// and readOnly, the service that made a call for the identity
// (userIdentity.invokedBy), the IAM user a call names
// (requestParameters.userName) and whether it must reset its password
// (passwordResetRequired), a console sign-in's SAML provider and the
// session's MFA flag (sessionContext.attributes.mfaAuthenticated).
func keepFacts(r *record, ev *audit.Event) {
	if r.EventType != "" {
		ev.Metadata["aws_event_type"] = importer.Text(r.EventType, 64)
	}
	if r.ReadOnly != nil {
		ev.Metadata["aws_read_only"] = *r.ReadOnly
	}
	if r.UserIdentity.InvokedBy != "" {
		ev.Metadata["aws_invoked_by"] = importer.Text(r.UserIdentity.InvokedBy, 128)
	}
	if u := str(r.Request, "userName"); u != "" {
		ev.Metadata["aws_user_name"] = importer.Text(u, 128)
	}
	if b, ok := r.Request["passwordResetRequired"].(bool); ok {
		ev.Metadata["aws_password_reset_required"] = b
	}
	if p := str(r.Extra, "SamlProviderArn"); p != "" {
		ev.Metadata["aws_saml_provider"] = importer.Text(p, 256)
	}
	if s := r.UserIdentity.Session; s != nil && s.Attributes != nil && s.Attributes.MFAAuthenticated != "" {
		ev.Metadata["aws_mfa_authenticated"] = s.Attributes.MFAAuthenticated == "true"
	}
}

// mapAction returns the catalog action for a sign-in or IAM event,
// filling the fields it needs, or "" to keep it as a custom action.
func mapAction(r *record, ev *audit.Event) string {
	failed := ev.Outcome == audit.OutcomeFailure
	switch r.EventSource + ":" + r.EventName {
	case "signin.amazonaws.com:ConsoleLogin":
		if str(r.Response, "ConsoleLogin") == "Failure" || failed {
			ev.Reason = failReason(r.ErrorMessage)
			if mfa := str(r.Extra, "MFAUsed"); mfa != "" {
				ev.Metadata["mfa_used"] = mfa == "Yes"
			}
			return audit.ActionLoginFailure
		}
		ev.Context.AuthMethod = "password"
		if r.UserIdentity.Type == "AssumedRole" || r.UserIdentity.Type == "FederatedUser" {
			ev.Context.AuthMethod = "sso"
		}
		if mfa := str(r.Extra, "MFAUsed"); mfa != "" {
			ev.Metadata["mfa_used"] = mfa == "Yes"
		}
		ev.Context.SessionID = ev.ID // CloudTrail gives no console session id
		return audit.ActionLoginSuccess
	case "signin.amazonaws.com:PasswordUpdated", "iam.amazonaws.com:ChangePassword":
		// A console password change that failed says so in
		// responseElements, without an errorCode.
		if str(r.Response, "PasswordUpdated") == "Failure" {
			ev.Outcome = audit.OutcomeFailure
			return ""
		}
		if failed {
			return ""
		}
		return audit.ActionPasswordChanged
	case "iam.amazonaws.com:CreateAccessKey":
		if failed {
			return ""
		}
		if k, ok := r.Response["accessKey"].(map[string]any); ok {
			ev.Target = audit.Target{Type: "access_key", ID: str(k, "accessKeyId"), Name: str(k, "userName")}
		}
		return audit.ActionAPIKeyCreated
	case "iam.amazonaws.com:DeleteAccessKey":
		if failed {
			return ""
		}
		ev.Target = audit.Target{Type: "access_key", ID: str(r.Request, "accessKeyId"), Name: str(r.Request, "userName")}
		return audit.ActionAPIKeyRevoked
	case "iam.amazonaws.com:EnableMFADevice", "iam.amazonaws.com:CreateVirtualMFADevice":
		if failed || r.EventName == "CreateVirtualMFADevice" {
			return ""
		}
		ev.Target = audit.Target{Type: "user", ID: str(r.Request, "userName")}
		ev.Metadata["factor"] = mfaFactor(str(r.Request, "serialNumber"))
		return audit.ActionMFAEnrolled
	case "iam.amazonaws.com:DeactivateMFADevice", "iam.amazonaws.com:DeleteVirtualMFADevice":
		if failed {
			return ""
		}
		ev.Target = audit.Target{Type: "user", ID: str(r.Request, "userName")}
		ev.Metadata["factor"] = mfaFactor(str(r.Request, "serialNumber"))
		return audit.ActionMFARemoved
	case "iam.amazonaws.com:AddUserToGroup":
		if failed {
			return ""
		}
		ev.Target = audit.Target{Type: "user", ID: str(r.Request, "userName")}
		ev.Metadata["new_role"] = importer.Text("group:"+str(r.Request, "groupName"), 256)
		return audit.ActionRoleChanged
	case "iam.amazonaws.com:AttachUserPolicy":
		if failed {
			return ""
		}
		ev.Target = audit.Target{Type: "user", ID: str(r.Request, "userName")}
		ev.Metadata["new_role"] = importer.Text(str(r.Request, "policyArn"), 256)
		return audit.ActionRoleChanged
	}
	return ""
}

// failReason maps a failed console sign-in's errorMessage.
func failReason(msg string) string {
	switch {
	case strings.Contains(msg, "Failed authentication"):
		return "invalid_password"
	case strings.Contains(msg, "No username found"):
		return "unknown_user"
	case strings.Contains(msg, "MFA"):
		return "mfa_failed"
	}
	return "other"
}

// mfaFactor reads the kind of MFA device from its serial number's ARN.
func mfaFactor(serial string) string {
	switch {
	case strings.Contains(serial, ":mfa/"):
		return "totp"
	case strings.Contains(serial, ":u2f/"):
		return "webauthn"
	}
	return "other"
}

func issuerName(r *record) string {
	if s := r.UserIdentity.Session; s != nil && s.Issuer != nil {
		return s.Issuer.UserName
	}
	return ""
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
