// Package safenet keeps webhook requests away from the platform's own
// network: endpoint URLs whose host resolves to a loopback, private,
// link-local (cloud metadata: 169.254.169.254, fd00:ec2::254), shared,
// multicast or otherwise non-public address are refused when endpoints are
// saved, and — because DNS may answer differently later (rebinding) and a
// redirect may point anywhere — again at dial time: the transport's dialer
// checks the address it is about to connect to, after resolution, for every
// connection including those of redirects. Proxies from the environment
// are ignored (they would hide the real destination).
package safenet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32",
		"fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Public reports whether ip is an address webhooks may be sent to.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// ErrNotAllowed reports a destination that is not public.
var ErrNotAllowed = errors.New("address not allowed: loopback, private, link-local or metadata")

// ErrInvalidURL reports a URL that cannot be an endpoint.
var ErrInvalidURL = errors.New("invalid endpoint URL")

// CheckURL validates an endpoint URL: absolute http or https, a host, no
// credentials; and unless allowPrivate, every address its host resolves
// to is public. It wraps ErrInvalidURL or ErrNotAllowed.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "" {
		return fmt.Errorf("%w: want an absolute http:// or https:// URL", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL are not allowed (use custom headers)", ErrInvalidURL)
	}
	if len(raw) > 2048 {
		return fmt.Errorf("%w: longer than 2048 bytes", ErrInvalidURL)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !allowPrivate && !Public(ip) {
			return fmt.Errorf("%w: %s", ErrNotAllowed, ip)
		}
		return nil
	}
	if allowPrivate {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: host %q does not resolve", ErrInvalidURL, host)
	}
	for _, a := range addrs {
		if !Public(a) {
			return fmt.Errorf("%w: %s resolves to %s", ErrNotAllowed, host, a.Unmap())
		}
	}
	return nil
}

// control returns a dialer Control that refuses addresses allow rejects;
// it runs after name resolution, on the address actually dialled.
func control(allow func(netip.AddrPort) bool) func(_, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNotAllowed, address)
		}
		if !allow(ap) {
			return fmt.Errorf("%w: %s", ErrNotAllowed, ap.Addr().Unmap())
		}
		return nil
	}
}

// Client returns the HTTP client webhooks are sent with: timeout per
// request, no environment proxy, at most 3 redirects (to http or https
// only), and unless allowPrivate a dialer that refuses non-public
// addresses.
func Client(timeout time.Duration, allowPrivate bool) *http.Client {
	if allowPrivate {
		return newClient(timeout, nil)
	}
	return newClient(timeout, func(ap netip.AddrPort) bool { return Public(ap.Addr()) })
}

// newClient builds the client; allow nil lets every address through.
func newClient(timeout time.Duration, allow func(netip.AddrPort) bool) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if allow != nil {
		d.Control = control(allow)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL refused", req.URL.Scheme)
			}
			return nil
		},
	}
}
