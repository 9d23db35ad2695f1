package protocol_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestErrorString(t *testing.T) {
	e := protocol.NewError(protocol.CodeForbidden, "no publish on r")
	if got, want := e.Error(), "forbidden: no publish on r"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if e.ID != 0 {
		t.Errorf("NewError set ID %d", e.ID)
	}
	f := protocol.Errorf(protocol.CodeTooManyRooms, "at most %d rooms", 100)
	if f.Code != protocol.CodeTooManyRooms || f.Message != "at most 100 rooms" {
		t.Errorf("Errorf = %+v", f)
	}
	wrapped := fmt.Errorf("gateway: join: %w", f)
	var pe *protocol.Error
	if !errors.As(wrapped, &pe) || pe != f {
		t.Error("a wrapped *protocol.Error is not found by errors.As")
	}
}

func TestErrorCodesAreDistinct(t *testing.T) {
	codes := []protocol.Code{
		protocol.CodeBadRequest, protocol.CodeUnknownOp, protocol.CodeMissingID, protocol.CodeInvalidRoom,
		protocol.CodeMessageTooLarge, protocol.CodeForbidden, protocol.CodeNotJoined, protocol.CodeTooManyRooms,
		protocol.CodeRateLimited, protocol.CodePublishFailed, protocol.CodeUnavailable, protocol.CodeInternal,
		protocol.CodeUnauthorized, protocol.CodeNotFound,
	}
	seen := map[protocol.Code]bool{}
	for _, c := range codes {
		if c == "" || seen[c] {
			t.Errorf("code %q is empty or repeated", c)
		}
		seen[c] = true
	}
}

func TestCloseCodesTable(t *testing.T) {
	want := []struct {
		code  protocol.CloseCode
		value uint16
		name  string
		retry protocol.Retry
	}{
		{protocol.CloseNormal, 1000, "normal", protocol.RetryNever},
		{protocol.CloseProtocolError, 1002, "protocol_error", protocol.RetryNever},
		{protocol.CloseUnsupportedData, 1003, "unsupported_data", protocol.RetryNever},
		{protocol.CloseInvalidPayload, 1007, "invalid_payload", protocol.RetryNever},
		{protocol.CloseMessageTooBig, 1009, "message_too_big", protocol.RetryNever},
		{protocol.CloseInternalError, 1011, "internal_error", protocol.RetryBackoff},
		{protocol.CloseServerShutdown, 4000, "server_shutdown", protocol.RetryNow},
		{protocol.CloseInvalidToken, 4001, "invalid_token", protocol.RetryNever},
		{protocol.CloseTokenExpired, 4002, "token_expired", protocol.RetryRefreshToken},
		{protocol.CloseForbidden, 4003, "forbidden", protocol.RetryNever},
		{protocol.CloseOriginRejected, 4004, "origin_rejected", protocol.RetryNever},
		{protocol.CloseKicked, 4005, "kicked", protocol.RetryNever},
		{protocol.CloseRateLimited, 4006, "rate_limited", protocol.RetryBackoff},
		{protocol.CloseSlowConsumer, 4007, "slow_consumer", protocol.RetryBackoff},
		{protocol.CloseHeartbeatTimeout, 4008, "heartbeat_timeout", protocol.RetryBackoff},
		{protocol.CloseUnsupportedProtocol, 4009, "unsupported_protocol", protocol.RetryNever},
	}
	if len(protocol.CloseCodes) != len(want) {
		t.Fatalf("CloseCodes has %d entries, want %d: a code was added or removed without updating this test and docs/protocol.md", len(protocol.CloseCodes), len(want))
	}
	for i, w := range want {
		if uint16(w.code) != w.value {
			t.Errorf("%s = %d, want %d (close codes are wire values; never renumber)", w.name, w.code, w.value)
		}
		got := protocol.LookupClose(w.code)
		if got.Code != w.code || got.Name != w.name || got.Retry != w.retry {
			t.Errorf("LookupClose(%d) = {%d %s %s}, want {%d %s %s}", w.value, got.Code, got.Name, got.Retry, w.code, w.name, w.retry)
		}
		if protocol.CloseCodes[i] != got {
			t.Errorf("CloseCodes[%d] = %+v, want %+v (table must be in code order)", i, protocol.CloseCodes[i], got)
		}
		if s := w.code.String(); s != w.name {
			t.Errorf("CloseCode(%d).String() = %q, want %q", w.value, s, w.name)
		}
	}
}

func TestCloseCodesUniqueAndInRange(t *testing.T) {
	codes := map[protocol.CloseCode]bool{}
	names := map[string]bool{}
	var prev protocol.CloseCode
	for i, c := range protocol.CloseCodes {
		if codes[c.Code] {
			t.Errorf("close code %d repeated", c.Code)
		}
		if names[c.Name] {
			t.Errorf("close name %q repeated", c.Name)
		}
		codes[c.Code], names[c.Name] = true, true
		if c.Name == "" || c.Name == "unknown" {
			t.Errorf("close code %d has name %q", c.Code, c.Name)
		}
		if i > 0 && c.Code <= prev {
			t.Errorf("CloseCodes not in ascending order at %d (%d after %d)", i, c.Code, prev)
		}
		prev = c.Code
		// RFC 6455: 1000–2999 are for the protocol, 3000–3999 registered,
		// 4000–4999 private use. 1005, 1006 and 1015 must never be sent.
		switch {
		case c.Code == 1005 || c.Code == 1006 || c.Code == 1015:
			t.Errorf("close code %d is reserved and must not be sent", c.Code)
		case c.Code >= 1000 && c.Code <= 1015:
		case c.Code >= 4000 && c.Code <= 4999:
		default:
			t.Errorf("close code %d is outside the ranges a server may use", c.Code)
		}
		switch c.Retry {
		case protocol.RetryBackoff, protocol.RetryNow, protocol.RetryRefreshToken, protocol.RetryNever:
		default:
			t.Errorf("close code %d has unknown retry %d", c.Code, c.Retry)
		}
	}
}

func TestLookupCloseUnknownCodesBackOff(t *testing.T) {
	for _, code := range []protocol.CloseCode{0, 1001, 1005, 1006, 1008, 1012, 1013, 1015, 3000, 4010, 4999, 65535} {
		got := protocol.LookupClose(code)
		if got.Code != code || got.Name != "unknown" || got.Retry != protocol.RetryBackoff {
			t.Errorf("LookupClose(%d) = %+v, want {%d unknown backoff}", code, got, code)
		}
		if code.String() != "unknown" {
			t.Errorf("CloseCode(%d).String() = %q", code, code.String())
		}
	}
}

func TestRetryString(t *testing.T) {
	for r, want := range map[protocol.Retry]string{
		protocol.RetryBackoff:      "backoff",
		protocol.RetryNow:          "now",
		protocol.RetryRefreshToken: "refresh_token",
		protocol.RetryNever:        "never",
		protocol.Retry(-1):         "unknown",
		protocol.Retry(99):         "unknown",
	} {
		if got := r.String(); got != want {
			t.Errorf("Retry(%d).String() = %q, want %q", r, got, want)
		}
	}
	// The zero value is the safe default for a code nobody documented.
	var zero protocol.Retry
	if zero != protocol.RetryBackoff {
		t.Error("the zero Retry must be RetryBackoff")
	}
}
