package abuse

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/testenv"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"10/1m": {10, time.Minute}, "30/m": {30, time.Minute}, "10/h": {10, time.Hour}, "0": {}, "5/30s": {5, 30 * time.Second}} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "10", "10/", "-1/m", "10/0s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestLimiterCountsEveryCheck(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	l := New(rdb, prefix)
	ctx := context.Background()
	acct := Check{Name: "signin_account", Rate: Rate{3, time.Hour}, Key: "a@example.com"}
	for i := range 3 {
		// A new IP each time: the account's limit still counts.
		if err := l.Allow(ctx, acct, Check{Name: "signin_ip", Rate: Rate{100, time.Hour}, Key: "10.0.0." + string(rune('1'+i))}); err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	err := l.Allow(ctx, acct, Check{Name: "signin_ip", Rate: Rate{100, time.Hour}, Key: "10.0.0.9"})
	le, ok := IsLimited(err)
	if !ok || le.Name != "signin_account" || le.RetryAfter <= 0 {
		t.Fatalf("4th try: %v", err)
	}
	if err := l.Allow(ctx, Check{Name: "signin_account", Rate: Rate{3, time.Hour}, Key: "b@example.com"}); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if err := l.Reset(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if err := l.Allow(ctx, acct); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}
