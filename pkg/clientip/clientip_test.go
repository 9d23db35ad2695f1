package clientip

import (
	"net/http/httptest"
	"testing"
)

func TestOfBehindTrustedProxies(t *testing.T) {
	ps, err := Parse("10.0.0.0/8, 127.0.0.1, 192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:1234", "198.51.100.1", "203.0.113.9"},                  // untrusted peer: header ignored
		{"10.1.2.3:1234", "198.51.100.1", "198.51.100.1"},                    // one trusted hop
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // forged left part ignored
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7, 192.168.1.1", "198.51.100.7"},
		{"10.1.2.3:1234", "", "10.1.2.3"},                  // no header: the proxy itself
		{"10.1.2.3:1234", "garbage, 10.0.0.5", "10.1.2.3"}, // nothing trustworthy
		{"127.0.0.1:1", "2001:db8::1", "2001:db8::1"},
		{"[::ffff:10.0.0.1]:1", "198.51.100.2", "198.51.100.2"}, // IPv4-mapped peer
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ps.Of(r); got != c.want {
			t.Errorf("remote %s, X-Forwarded-For %q: client %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	var none Proxies
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:1"
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := none.Of(r); got != "10.1.2.3" {
		t.Errorf("no trusted proxies: %s", got)
	}
}

func TestParse(t *testing.T) {
	for _, bad := range []string{"nope", "10.0.0.0/33", "1.2.3"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	ps, err := Parse(" , 10.1.2.3/8 ,::1")
	if err != nil || len(ps) != 2 || ps[0].String() != "10.0.0.0/8" || ps[1].String() != "::1/128" {
		t.Fatalf("Parse: %v, %v", ps, err)
	}
}
