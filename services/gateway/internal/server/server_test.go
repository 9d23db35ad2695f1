package server

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		offered []string
		want    protocol.Codec
	}{
		{nil, protocol.JSON},
		{[]string{protocol.TokenSubprotocolPrefix + "abc"}, protocol.JSON},
		{[]string{protocol.SubprotocolJSON}, protocol.JSON},
		{[]string{"roomcast.v9.xml", protocol.SubprotocolJSON}, protocol.JSON},
		{[]string{"roomcast.v9.xml"}, nil},
		{[]string{"chat", protocol.TokenSubprotocolPrefix + "abc"}, nil},
	}
	for _, c := range cases {
		if got := negotiate(c.offered); got != c.want {
			t.Errorf("negotiate(%q) = %v, want %v", c.offered, got, c.want)
		}
	}
}

func TestTokenCarriers(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/connect?token=fromquery", nil)
	r.Header.Add("Sec-WebSocket-Protocol", "roomcast.v1.json, roomcast.token.fromheader")
	offered := offeredProtocols(r)
	if len(offered) != 2 {
		t.Fatalf("offered %q", offered)
	}
	if got := tokenFrom(r, offered); got != "fromheader" {
		t.Fatalf("subprotocol token should win, got %q", got)
	}
	r = httptest.NewRequest("GET", "/v1/connect?token=fromquery", nil)
	if got := tokenFrom(r, offeredProtocols(r)); got != "fromquery" {
		t.Fatalf("query token: got %q", got)
	}
}

func TestOriginAllowList(t *testing.T) {
	s := &Server{origins: []string{"https://app.example.com", "https://*.example.org"}}
	for origin, want := range map[string]bool{
		"":                          true, // not a browser
		"https://app.example.com":   true,
		"HTTPS://APP.EXAMPLE.COM":   true,
		"https://chat.example.org":  true,
		"https://evil.example.com":  false,
		"http://app.example.com":    false,
		"https://example.org.evil":  false,
		"https://app.example.com.x": false,
	} {
		if got := s.originAllowed(origin); got != want {
			t.Errorf("originAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
	if !(&Server{origins: []string{"*"}}).originAllowed("https://anything.test") {
		t.Error(`"*" should allow any origin`)
	}
}

func TestIPLimiter(t *testing.T) {
	l := newIPLimiter(1, 3)
	now := time.Now()
	for i := 0; i < 3; i++ {
		if !l.allow("10.0.0.1", now) {
			t.Fatalf("handshake %d within the burst refused", i)
		}
	}
	if l.allow("10.0.0.1", now) {
		t.Fatal("handshake over the burst allowed")
	}
	if !l.allow("10.0.0.2", now) {
		t.Fatal("another address shares the bucket")
	}
	if !l.allow("10.0.0.1", now.Add(1100*time.Millisecond)) {
		t.Fatal("bucket did not refill")
	}
	l.sweep(now.Add(ipIdle + 2*time.Second))
	if len(l.buckets) != 0 {
		t.Fatalf("%d idle buckets kept after the sweep", len(l.buckets))
	}
}
