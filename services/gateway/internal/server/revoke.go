package server

import "github.com/roomcast/roomcast/pkg/protocol"

// CloseRevoked closes, with 4003, every live connection whose token's API
// key is now revoked (or past its rotation grace): a revocation reaches
// live connections, not only new handshakes. The keyring calls it after
// every refresh, so it runs within seconds of a revocation on every node.
// It returns how many connections it closed (Close counts them in
// roomcast_gateway_closes_total{code="forbidden"}).
func (s *Server) CloseRevoked(revoked func(kid string) bool) int {
	n := 0
	for _, c := range s.snapshot() {
		claims := c.Claims()
		if claims == nil || claims.APIKey == "" || !revoked(claims.APIKey) {
			continue
		}
		c.Close(protocol.CloseForbidden, "API key revoked")
		s.log.Info("connection closed: API key revoked", "conn", c.ID, "app", claims.App, "key", claims.APIKey)
		n++
	}
	return n
}
