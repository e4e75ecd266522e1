package client_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vigilhq/vigil/client"
)

// TestResultsPrintReadably checks that per-event results and their errors
// print as sentences, not as Go struct dumps like &{invalid …}.
func TestResultsPrintReadably(t *testing.T) {
	res := &client.IngestResult{Accepted: 1, Rejected: 1, Results: []client.EventResult{
		{Index: 0, Status: client.StatusAccepted, ID: "01JABC"},
		{Index: 1, Status: client.StatusRejected, Error: &client.ErrorBody{Code: "invalid", Message: "reason is required", Field: "reason"}},
	}}
	for _, tc := range []struct{ got, want string }{
		{fmt.Sprint(res), "1 accepted, 0 duplicates, 1 rejected"},
		{fmt.Sprint(res.Results[0]), "event 0 accepted (id 01JABC)"},
		{fmt.Sprint(&res.Results[1]), "event 1 rejected: vigil: invalid: reason is required (field reason)"},
		{fmt.Sprintf("%v", res.Results[1].Error), "vigil: invalid: reason is required (field reason)"},
		{fmt.Sprint((*client.ErrorBody)(nil)), "<nil>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
	var err error = res.Results[1].Error
	if !errors.Is(res.Results[1].Error.Err(), client.ErrInvalid) || err.Error() == "" {
		t.Error("a rejection's error must match client.ErrInvalid")
	}
}
