package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestEveryCodeHasTextAndAnHTTPStatus(t *testing.T) {
	want := map[string]int{
		CodeBadRequest: 400, CodeUnauthorized: 401, CodeForbidden: 403, CodeNotFound: 404,
		CodeTooLarge: 413, CodeRateLimited: 429, CodeBusy: 409, CodeStorageUnavailable: 503,
		CodeProviderUnavailable: 502, CodeInternal: 500, CodeEnded: 409, CodeUnsupported: 415,
	}
	if len(codes) != len(want) {
		t.Fatalf("the table has %d codes, want %d", len(codes), len(want))
	}
	for code, status := range want {
		e := Err(code)
		if e.Code != code || e.Message == "" || e.HTTPStatus() != status {
			t.Errorf("Err(%s) = %+v, HTTP %d; want a text and HTTP %d", code, e, e.HTTPStatus(), status)
		}
	}
	if s := Err("no_such_code").HTTPStatus(); s != http.StatusInternalServerError {
		t.Errorf("an unknown code answers HTTP %d, want 500", s)
	}
}

func TestAsErrorFindsAWrappedErrorAndHidesOthers(t *testing.T) {
	busy := Errf(CodeBusy, "a reply is already in progress")
	if got := AsError(fmt.Errorf("send: %w", busy)); got != busy {
		t.Errorf("AsError of a wrapped *Error = %+v, want it", got)
	}
	if got := AsError(errors.New("dial tcp 10.0.0.1: refused")); got.Code != CodeInternal || got.Message != Err(CodeInternal).Message {
		t.Errorf("AsError of a plain error = %+v, want internal with its generic text", got)
	}
}

func TestErrorEventCarriesRetryAfterOnlyWhenSet(t *testing.T) {
	tests := []struct {
		name  string
		e     *Error
		retry any // the decoded retry_after_ms, nil when absent
	}{
		{"no hint", Err(CodeBusy), nil},
		{"rate limited", &Error{Code: CodeRateLimited, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, float64(1500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			if err := json.Unmarshal(NewError("c1", "s1", tt.e).Frame, &got); err != nil {
				t.Fatal(err)
			}
			if got["type"] != "error" || got["id"] != "c1" || got["session_id"] != "s1" || got["code"] != tt.e.Code ||
				got["message"] != tt.e.Message || got["retry_after_ms"] != tt.retry {
				t.Fatalf("error event %v for %+v", got, tt.e)
			}
		})
	}
}
