package conn

import (
	"time"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Lifecycle events for the worker services (webhooks, metrics): each is
// built only when an enabled consumer takes its type, so a cluster that
// runs none of them pays nothing.

func (c *Conn) emitConnection(typ string) {
	if c.d.Events == nil || !c.d.Events.Wants(typ) {
		return
	}
	p := events.Connection{
		V: events.Version, App: c.claims.App, ClientID: c.claims.ClientID(), ConnID: c.ID,
		SessionID: c.SessionID(), Node: c.d.Config.NodeID, At: time.Now().UnixMilli(),
	}
	if typ == events.TypeConnectionClosed {
		p.Code = int(c.endCode())
	}
	c.d.Events.Emit(typ, p)
}

// endCode is the close code the connection ended with: the server's, the
// peer's normal close, or 1006 (no close frame: the network went away).
func (c *Conn) endCode() protocol.CloseCode {
	c.mu.Lock()
	code := c.closeCode
	c.mu.Unlock()
	switch {
	case code != 0:
		return code
	case c.peerClosed:
		return protocol.CloseNormal
	}
	return 1006
}

func (c *Conn) emitMembership(typ, room string) {
	if _, presence := protocol.ChannelRoom(room); presence || c.d.Events == nil || !c.d.Events.Wants(typ) {
		return
	}
	c.d.Events.Emit(typ, events.Membership{
		V: events.Version, App: c.claims.App, Room: room, ClientID: c.claims.ClientID(),
		ConnID: c.ID, Node: c.d.Config.NodeID, At: time.Now().UnixMilli(),
	})
}
