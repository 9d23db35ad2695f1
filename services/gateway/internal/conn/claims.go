package conn

import "github.com/roomcast/roomcast/pkg/auth/token"

// Claims is the connection's verified token (the one it was admitted with,
// or its latest refresh); the server checks its API key against
// revocations. Safe from any goroutine.
func (c *Conn) Claims() *token.Claims { return c.current.Load() }
