package safenet_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/roomcast/roomcast/services/webhooks/internal/safenet"
)

func TestPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1": false, "169.254.169.254": false, "10.1.2.3": false, "172.20.0.1": false, "192.168.1.1": false,
		"100.100.100.200": false, "0.0.0.0": false, "::1": false, "fd00:ec2::254": false, "fe80::1": false,
		"::ffff:127.0.0.1": false, "::ffff:169.254.169.254": false, "224.0.0.1": false,
		"93.184.215.14": true, "1.1.1.1": true, "2606:4700:4700::1111": true,
	} {
		if got := safenet.Public(netip.MustParseAddr(s)); got != want {
			t.Errorf("Public(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"http://127.0.0.1:9000/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost/x", "http://[::1]/", "http://10.0.0.5/"} {
		if err := safenet.CheckURL(ctx, u, false); !errors.Is(err, safenet.ErrNotAllowed) {
			t.Errorf("CheckURL(%s) = %v, want ErrNotAllowed", u, err)
		}
		if err := safenet.CheckURL(ctx, u, true); err != nil {
			t.Errorf("CheckURL(%s, allowPrivate) = %v", u, err)
		}
	}
	for _, u := range []string{"ftp://example.com/", "/relative", "http://user:pw@example.com/", "http://", "mailto:a@b"} {
		if err := safenet.CheckURL(ctx, u, false); !errors.Is(err, safenet.ErrInvalidURL) {
			t.Errorf("CheckURL(%s) = %v, want ErrInvalidURL", u, err)
		}
	}
	if err := safenet.CheckURL(ctx, "https://93.184.215.14/hook", false); err != nil {
		t.Errorf("public IP refused: %v", err)
	}
}

// The dialer refuses private addresses whatever the URL said: a name
// that resolves to loopback (as after DNS rebinding) and a redirect from
// an allowed server to the metadata address are both refused.
func TestClientRefusesPrivateAtDialTime(t *testing.T) {
	hit := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- struct{}{} }))
	defer srv.Close()
	c := safenet.Client(5*time.Second, false)
	for _, u := range []string{srv.URL, "http://localhost:" + srv.URL[len("http://127.0.0.1:"):]} {
		_, err := c.Post(u, "application/json", nil)
		if !errors.Is(err, safenet.ErrNotAllowed) {
			t.Errorf("POST %s: %v, want ErrNotAllowed", u, err)
		}
	}
	if len(hit) != 0 {
		t.Fatal("the private server was reached")
	}
	// A redirect is dialled under the same rule: here only the
	// redirecting server's own address is allowed (standing in for a public
	// server), and its redirect to another address is refused.
	redir := httptest.NewServer(http.RedirectHandler(srv.URL+"/x", http.StatusTemporaryRedirect))
	defer redir.Close()
	redirAddr := netip.MustParseAddrPort(redir.Listener.Addr().String())
	rc := safenet.NewClientForTest(5*time.Second, func(ap netip.AddrPort) bool { return ap == redirAddr })
	if _, err := rc.Get(redir.URL); !errors.Is(err, safenet.ErrNotAllowed) {
		t.Errorf("redirect to a refused address: %v, want ErrNotAllowed", err)
	}
	if len(hit) != 0 {
		t.Fatal("the redirect target was reached")
	}
	if _, err := c.Get("http://169.254.169.254/latest/meta-data/"); !errors.Is(err, safenet.ErrNotAllowed) {
		t.Errorf("metadata address: %v, want ErrNotAllowed", err)
	}
}
