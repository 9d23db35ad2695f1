package conn

import "github.com/roomcast/roomcast/pkg/auth/token"

// Claims is the verified token the connection was admitted with; the
// server checks its API key against revocations.
func (c *Conn) Claims() *token.Claims { return c.claims }
