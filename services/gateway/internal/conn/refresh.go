package conn

import (
	"errors"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// refresh replaces the connection's token in band: the new token must be
// valid and for the same app and client. Its expiry and capabilities apply
// from now on (rooms already joined stay joined); the old expiry timer is
// replaced, so the connection outlives the first token.
func (c *Conn) refresh(cmd *protocol.Command) {
	claims, err := c.d.Verifier.Verify(cmd.Token)
	if err != nil {
		msg := "the new token is invalid"
		if errors.Is(err, token.ErrExpired) {
			msg = "the new token has expired"
		}
		c.log.Info("refresh refused", "err", err, "token_fp", token.Fingerprint(cmd.Token))
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnauthorized, msg))
		return
	}
	if claims.App != c.claims.App || claims.ClientID() != c.claims.ClientID() {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeForbidden, "a refresh token must be for the same app and client"))
		return
	}
	claims, c.caps = keepClaims(claims)
	c.claims = claims
	c.current.Store(claims)
	c.armExpiry()
	c.Reply(&protocol.Reply{ID: cmd.ID})
}

// armExpiry (re)schedules the close with 4002 when the token expires.
func (c *Conn) armExpiry() {
	var at int64
	if exp := c.claims.ExpiresAt; exp != nil {
		at = exp.UnixNano()
	}
	expiries.set(c, at)
}
