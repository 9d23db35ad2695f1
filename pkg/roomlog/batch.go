package roomlog

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/lane"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Appends are pipelined. Each of the Log's lanes (package lane; a room
// always uses the same one) sends everything queued on it in one round
// trip, one append.lua call per room with that room's messages in order,
// and gathers what arrives meanwhile for the next. So a connection that
// publishes faster than one Redis round trip per message is not held to
// that pace, and under load Redis sees one call per room per round trip.

// appendReq is one AppendAsync call waiting on its lane.
type appendReq struct {
	ctx       context.Context
	app, room string
	payload   []byte
	idemKey   string
	done      func(protocol.Position, bool, error)
}

func appendSize(r *appendReq) int { return len(r.payload) }

// maxBatchBytes bounds the payloads of one lane's round trip (a bigger
// append goes alone).
const maxBatchBytes = 1 << 20

// roomCall is one append.lua call: a room's requests in a batch.
type roomCall struct {
	base string // the room's key prefix
	reqs []*appendReq
	cmd  *redis.Cmd
	keys []string
	args []any
}

// newLanes creates the Log's n append lanes.
func (l *Log) newLanes(n, items, bytes int) {
	for range n {
		l.lanes = append(l.lanes, lane.New(lane.Limits{Items: items, Bytes: bytes}, appendSize, l.sendAppends))
	}
}

// sendAppends runs one batch: every room's call in one pipeline, then
// again with the script's source for the calls Redis did not have the
// script for.
func (l *Log) sendAppends(batch []*appendReq) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done(protocol.Position{}, false, fmt.Errorf("roomlog: append: %w", err))
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := lane.Context(live, func(r *appendReq) context.Context { return r.ctx })
	defer cancel()
	calls, err := l.roomCalls(live)
	if err != nil {
		for _, r := range live {
			r.done(protocol.Position{}, false, err)
		}
		return
	}
	if len(calls) == 1 {
		// One room: a plain call, which Run retries with the source on
		// NOSCRIPT by itself.
		c := calls[0]
		c.cmd = appendScript.Run(ctx, l.rdb, c.keys, c.args...)
		c.answer()
		return
	}
	run := func(eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd, calls []*roomCall) {
		pipe := l.rdb.Pipeline()
		for _, c := range calls {
			c.cmd = eval(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx) // each call's error is read from its Cmd
	}
	run(appendScript.EvalSha, calls)
	var missing []*roomCall
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		run(appendScript.Eval, missing)
	}
	for _, c := range calls {
		c.answer()
	}
}

// roomCalls groups a batch by room, keeping each room's order.
func (l *Log) roomCalls(batch []*appendReq) ([]*roomCall, error) {
	var calls []*roomCall
	var byRoom map[[2]string]*roomCall
	if len(batch) > 1 {
		byRoom = make(map[[2]string]*roomCall, len(batch))
	}
	for _, r := range batch {
		c := byRoom[[2]string{r.app, r.room}]
		if c == nil {
			epoch, err := newEpoch()
			if err != nil {
				return nil, err
			}
			s := l.settingsFor(r.app, r.room)
			base, meta, stream := l.roomKeys(r.app, r.room)
			c = &roomCall{base: base, keys: []string{meta, stream}, args: []any{epoch, s.streamSize, s.streamTTLms, s.metaTTLms, l.idemMS}}
			if byRoom != nil {
				byRoom[[2]string{r.app, r.room}] = c
			}
			calls = append(calls, c)
		}
		c.reqs = append(c.reqs, r)
		idx := 0 // the key's index in the script's KEYS (from 1); 0: none
		if r.idemKey != "" {
			c.keys = append(c.keys, c.base+":idem:"+r.idemKey)
			idx = len(c.keys)
		}
		c.args = append(c.args, r.payload, idx)
	}
	return calls, nil
}

// answer hands each request of the call its result.
func (c *roomCall) answer() {
	res, err := c.cmd.Slice()
	if err == nil && len(res) != 3*len(c.reqs) {
		err = fmt.Errorf("unexpected reply of %d values for %d messages", len(res), len(c.reqs))
	}
	for i, r := range c.reqs {
		if err != nil {
			r.done(protocol.Position{}, false, fmt.Errorf("roomlog: append: %w", err))
			continue
		}
		flag, _ := res[3*i].(int64)
		if flag == 2 {
			msg, _ := res[3*i+1].(string)
			r.done(protocol.Position{}, false, fmt.Errorf("roomlog: append: %s", msg))
			continue
		}
		pos, perr := parsePosition(res[3*i+1], res[3*i+2])
		if perr != nil {
			r.done(protocol.Position{}, false, fmt.Errorf("roomlog: append: %w", perr))
			continue
		}
		r.done(pos, flag == 1, nil)
	}
}
