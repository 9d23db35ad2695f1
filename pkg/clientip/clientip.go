// Package clientip tells which address a request comes from when
// services sit behind reverse proxies or load balancers: the per-IP limits
// of the gateway and the auth service count that address.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the trusted proxies: CIDRs of the hops whose
// X-Forwarded-For entries are believed.
type Proxies []netip.Prefix

// Parse parses a comma-separated list of CIDRs or single addresses
// (GATEWAY_TRUSTED_PROXIES, AUTH_TRUSTED_PROXIES); empty means none.
func Parse(s string) (Proxies, error) {
	var out Proxies
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			addr, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q is not a CIDR or address", f)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Of is the address r is counted under: the TCP peer, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For entry that is not a
// trusted proxy (entries further left are the client's to forge).
func (ps Proxies) Of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !ps.trusted(host) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			break // garbage: stop at the last address we can trust
		}
		if !ps.trusted(hop) {
			return hop
		}
	}
	return host
}

func (ps Proxies) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
