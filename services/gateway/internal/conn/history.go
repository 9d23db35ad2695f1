package conn

import (
	"context"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// HistoryReader pages a room's history (pkg/history.Reader).
type HistoryReader interface {
	Query(ctx context.Context, q history.Query) (history.Page, error)
}

// history answers the history op: one page of the room's archived and
// recent messages. It needs the history capability on the room, not a
// join.
func (c *Conn) history(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpHistory); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if c.d.History == nil {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "history is not enabled on this cluster (GATEWAY_HISTORY_URL)"))
		return
	}
	hq := cmd.History
	if hq == nil {
		hq = &protocol.HistoryQuery{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	page, err := c.d.History.Query(ctx, history.Query{
		App: c.claims.App, Room: cmd.Room, Epoch: hq.Epoch,
		FromOffset: hq.FromOffset, ToOffset: hq.ToOffset, Start: hq.Start, End: hq.End, Backward: hq.Backward,
		Limit: cmd.Limit, Cursor: cmd.Cursor, MaxBytes: c.d.Config.OutboxBytes / 4,
	})
	if perr := history.ProtocolError(err); perr != nil {
		if perr.Code == protocol.CodeUnavailable {
			c.log.Warn("history read failed", "room", cmd.Room, "err", err)
		}
		c.replyError(cmd.ID, perr)
		return
	}
	markBinary(page.Messages)
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room, Messages: page.Messages, Cursor: page.Cursor})
}

// markBinary flags messages whose data is not UTF-8 JSON as binary. The
// reader (pkg/history) already does, for rows archived before the archive
// kept binary marks; this guards the JSON codec, which would refuse the
// whole page for one unmarked message that is not JSON.
func markBinary(msgs []protocol.Message) {
	for i := range msgs {
		m := &msgs[i]
		if !m.Binary && len(m.Data) > 0 && (!utf8.Valid(m.Data) || !json.Valid(m.Data)) {
			m.Binary = true
		}
	}
}
