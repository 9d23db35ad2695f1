package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
)

type taskKind uint8

const (
	taskDeliver taskKind = iota
	taskAdd
	taskRemove
	taskGapCheck
	taskResync
	taskJoinRead
)

type task struct {
	kind  taskKind
	r     *room
	env   *envelope.Envelope
	m     Member
	pos   protocol.Position
	since *protocol.Position
	id    uint64
	last  bool
	read  *joinRead // taskJoinRead
}

// worker owns the delivery state of its rooms; everything on a room runs
// on its worker's goroutine, in order.
//
// Frames are queued on members first and written afterwards: the worker
// takes every task already waiting (up to batchTasks) before it flushes the
// members it queued frames on (dirty). A worker that keeps up writes each
// message at once; one that falls behind writes several messages to a
// member in one syscall.
type worker struct {
	h     *Hub
	tasks chan task
	done  chan struct{}
	dirty []Member // members to flush; owned by run
}

const (
	// batchTasks bounds the tasks taken before flushing, so that frames
	// queued first do not wait long behind a backlog.
	batchTasks = 64
	// flushChunk members are flushed on the worker itself; a room with more
	// dirty members gets a goroutine per further chunk, so that one big
	// room's writes use more than one core.
	flushChunk = 256
)

func (w *worker) post(t task) {
	select {
	case w.tasks <- t:
	case <-w.h.stop:
	}
}

// storeTimeout bounds one read of a recovery stream from a worker, which
// holds up the worker's other rooms meanwhile.
const storeTimeout = 2 * time.Second

func (w *worker) run() {
	defer close(w.done)
	// Members waiting for a flush would otherwise keep their outbox's
	// writer role, and nothing queued on them later would go out.
	defer w.flush()
	for {
		var t task
		select {
		case t = <-w.tasks:
		case <-w.h.stop:
			return
		}
		w.handle(t)
	batch:
		for n := 1; n < batchTasks; n++ {
			select {
			case t = <-w.tasks:
				w.handle(t)
			default:
				break batch
			}
		}
		w.flush()
	}
}

// queue hands f to m, remembering m for the next flush if it needs one.
func (w *worker) queue(m Member, f []byte) {
	if m.QueueFrame(f) {
		w.dirty = append(w.dirty, m)
	}
}

// chunks recycles the member lists handed to flushing goroutines.
var chunks = sync.Pool{New: func() any { c := make([]Member, 0, flushChunk); return &c }}

// flush writes what was queued on members since the last flush.
func (w *worker) flush() {
	d := w.dirty
	for len(d) > flushChunk {
		chunk := chunks.Get().(*[]Member)
		*chunk = append((*chunk)[:0], d[len(d)-flushChunk:]...)
		d = d[:len(d)-flushChunk]
		go func() {
			flushAll(*chunk)
			clear(*chunk)
			chunks.Put(chunk)
		}()
	}
	flushAll(d)
	clear(w.dirty)
	if cap(w.dirty) > 4*flushChunk {
		w.dirty = nil // a burst's list: let it go
	} else {
		w.dirty = w.dirty[:0]
	}
}

func flushAll(ms []Member) {
	for _, m := range ms {
		m.Flush()
	}
}

func (w *worker) handle(t task) {
	r := t.r
	switch t.kind {
	case taskDeliver:
		w.deliver(r, t.env)
	case taskAdd:
		w.add(r, t.m, t.pos, t.since, t.id)
	case taskRemove:
		if t.m != nil {
			delete(r.members, t.m)
			if js := r.joining[t.m]; js != nil {
				js.left = true
				delete(r.joining, t.m)
			}
		}
		if t.last {
			r.removed = true
			r.pending = nil
		}
	case taskGapCheck:
		r.armed = false
		w.fillGap(r)
	case taskResync:
		w.resync(r)
	case taskJoinRead:
		w.joinRead(r, t.m, t.read)
	}
}

func (w *worker) deliver(r *room, env *envelope.Envelope) {
	if r.removed {
		return
	}
	if env.Transient {
		w.fanout(r, env)
		return
	}
	if r.next == 0 {
		// No member has been added yet: hold it; add() decides.
		r.pending[env.Offset] = env
		return
	}
	if env.Epoch != r.epoch {
		w.resetEpoch(r, env.Epoch)
	}
	if env.Offset < r.next {
		w.h.stats.duplicates.Add(1)
		return
	}
	r.pending[env.Offset] = env
	w.drain(r)
	if len(r.pending) > w.h.cfg.MaxPending {
		w.fillGap(r)
		return
	}
	w.arm(r)
}

// resetEpoch handles a room whose state in Redis was lost and restarted:
// offsets start again at 1 in the new epoch. Members continue from there
// (their SDKs see the epoch change).
func (w *worker) resetEpoch(r *room, epoch string) {
	w.h.log.Warn("room epoch changed under live members", "app", r.key.app, "room", r.key.room, "old_epoch", r.epoch, "new_epoch", epoch)
	w.h.stats.epochResets.Add(1)
	r.epoch = epoch
	r.next = 1
	for off, e := range r.pending {
		if e.Epoch != epoch {
			delete(r.pending, off)
		}
	}
	for m := range r.members {
		r.members[m] = 1
	}
}

// drain delivers pending messages while the next offset is present.
func (w *worker) drain(r *room) {
	for {
		env, ok := r.pending[r.next]
		if !ok {
			return
		}
		delete(r.pending, r.next)
		r.next++
		w.fanout(r, env)
	}
}

// arm schedules a gap check if messages are waiting behind a missing offset.
func (w *worker) arm(r *room) {
	if r.armed || len(r.pending) == 0 {
		return
	}
	r.armed = true
	time.AfterFunc(w.h.cfg.GapWait, func() { w.post(task{kind: taskGapCheck, r: r}) })
}

// fillGap reads the missing offsets before the oldest pending message from
// the recovery stream.
func (w *worker) fillGap(r *room) {
	if r.removed || len(r.pending) == 0 || r.next == 0 {
		return
	}
	lowest := uint64(0)
	for off := range r.pending {
		if lowest == 0 || off < lowest {
			lowest = off
		}
	}
	if lowest > r.next {
		entries, err := w.read(r, r.next, lowest-1)
		if err != nil && !errors.Is(err, roomlog.ErrTruncated) && !errors.Is(err, roomlog.ErrEpochChanged) {
			// Redis is unreachable: try again later unless the backlog is
			// already too large to keep.
			w.h.log.Warn("gap fill failed", "app", r.key.app, "room", r.key.room, "from", r.next, "to", lowest-1, "err", err)
			if len(r.pending) <= w.h.cfg.MaxPending {
				w.arm(r)
				return
			}
		}
		w.h.stats.gapFills.Add(1)
		w.stash(r, entries)
		w.drain(r)
		if next := r.next; next < lowest {
			// The stream no longer holds them: skip ahead, loudly.
			w.h.log.Error("messages lost: offsets no longer in the recovery stream", "app", r.key.app, "room", r.key.room, "from", next, "to", lowest-1)
			w.h.stats.lost.Add(lowest - next)
			r.next = lowest
		}
	}
	w.drain(r)
	w.arm(r)
}

// stash puts entries read from the recovery stream among the room's
// pending messages; drain then delivers them in order.
func (w *worker) stash(r *room, entries []roomlog.Entry) {
	for i := range entries {
		if entries[i].Offset >= r.next {
			r.pending[entries[i].Offset] = w.decodeEntry(r, entries[i])
		}
	}
}

// resync catches a room up with its position in Redis.
func (w *worker) resync(r *room) {
	if r.removed || r.next == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	pos, err := w.h.rlog.Position(ctx, r.key.app, r.key.room)
	cancel()
	if err != nil {
		w.h.log.Warn("resync failed", "app", r.key.app, "room", r.key.room, "err", err)
		return
	}
	if pos.Epoch != r.epoch {
		w.resetEpoch(r, pos.Epoch)
	}
	if pos.Offset >= r.next {
		entries, err := w.read(r, r.next, pos.Offset)
		if err != nil && len(entries) == 0 {
			w.h.log.Warn("resync read failed", "app", r.key.app, "room", r.key.room, "err", err)
		}
		w.stash(r, entries)
		w.drain(r)
		w.arm(r)
	}
}

// add makes m a member. Its join reply goes out first, then whatever m
// must receive before live traffic — replayed from the recovery stream to m
// alone — then m receives live messages.
//
// Without since, m receives everything after pos (the position its join
// read). With since (a recovering client), m receives everything after
// since, if the room's stream still holds all of it in the same epoch;
// otherwise the reply says recovered=false and m continues after pos.
//
// What m needs from the stream is read off the worker (readForJoin), so
// that a crowd of clients resuming into a big room does not hold up the
// room's delivery to everyone else with one Redis read each. The room goes
// on delivering meanwhile; each read's result comes back as a task, and
// whatever the room delivered past it is read in turn, until m has caught
// up and is admitted.
func (w *worker) add(r *room, m Member, pos protocol.Position, since *protocol.Position, id uint64) {
	if r.removed {
		// Cannot happen while m holds a reference; answer anyway.
		replyTornDown(m, id)
		return
	}
	if r.next == 0 {
		r.epoch = pos.Epoch
		r.next = pos.Offset + 1
		for off, e := range r.pending {
			if e.Epoch != r.epoch || off < r.next {
				delete(r.pending, off)
			}
		}
	}
	from := pos.Offset + 1
	if pos.Epoch != r.epoch {
		from = r.next
	}
	js := &joinState{id: id, pos: pos, epoch: r.epoch, from: from, covered: from - 1}
	if since != nil && since.Epoch == r.epoch && pos.Epoch == r.epoch && since.Offset <= pos.Offset {
		// Everything after since must still be in the stream, including
		// what this node has not delivered yet (it may need filling).
		to := max(pos.Offset, r.next-1)
		if since.Offset >= to {
			js.recovered, js.from, js.covered = true, since.Offset+1, since.Offset
		} else {
			js.since = since.Offset
			w.readForJoin(r, m, js, since.Offset+1, to, true)
			return
		}
	}
	w.catchUp(r, m, js)
}

// replyTornDown answers a join whose room was removed before m was added.
func replyTornDown(m Member, id uint64) {
	m.Reply(&protocol.Reply{ID: id, Error: protocol.NewError(protocol.CodeUnavailable, "room was torn down during join; retry")})
}

// joinState is a join waiting for the recovery stream.
type joinState struct {
	id        uint64
	pos       protocol.Position // what the join read; the reply carries it
	epoch     string            // the room's epoch when the join started
	since     uint64            // the recovering client's last offset
	from      uint64            // the first offset m receives
	recovered bool
	backlog   []roomlog.Entry
	covered   uint64 // backlog holds every offset from from up to here
	left      bool   // m left the room before it was admitted
}

// joinRead is one read's result for a join.
type joinRead struct {
	join    *joinState
	to      uint64 // the read's last offset
	entries []roomlog.Entry
	err     error
	since   bool // the read that decides recovered
}

// catchUp reads what the room delivered past what js holds, or admits m.
func (w *worker) catchUp(r *room, m Member, js *joinState) {
	if js.covered+1 < r.next {
		w.readForJoin(r, m, js, js.covered+1, r.next-1, false)
		return
	}
	w.admit(r, m, js)
}

// readForJoin reads offsets from..to of the room's stream for js on a
// goroutine and hands the result back to the worker.
func (w *worker) readForJoin(r *room, m Member, js *joinState, from, to uint64, since bool) {
	if r.joining == nil {
		r.joining = make(map[Member]*joinState)
	}
	r.joining[m] = js
	epoch := js.epoch
	go func() {
		entries, err := w.rangeOf(r, epoch, from, to)
		w.post(task{kind: taskJoinRead, r: r, m: m, read: &joinRead{join: js, to: to, entries: entries, err: err, since: since}})
	}()
}

// joinRead continues a join with a read's result.
func (w *worker) joinRead(r *room, m Member, rd *joinRead) {
	js := rd.join
	if r.joining[m] == js {
		delete(r.joining, m)
	}
	switch {
	case r.removed:
		replyTornDown(m, js.id)
		return
	case js.left:
		// Left before it was admitted: answer the join, deliver nothing.
		room, _ := protocol.ChannelRoom(r.key.room)
		p := js.pos
		m.Reply(&protocol.Reply{ID: js.id, Room: room, Position: &p})
		return
	case r.epoch != js.epoch:
		// The room's state in Redis restarted meanwhile: continue in the
		// new epoch from where the room is.
		js.recovered, js.from, js.backlog = false, r.next, nil
		js.covered = r.next - 1
		w.admit(r, m, js)
		return
	case rd.err != nil && rd.since:
		// The stream no longer holds everything after since: the client
		// continues after the join's position.
		w.catchUp(r, m, js)
		return
	case rd.err != nil:
		w.h.log.Warn("join catch-up incomplete", "app", r.key.app, "room", r.key.room, "err", rd.err)
		js.backlog = append(js.backlog, rd.entries...)
		js.covered = r.next - 1
		w.admit(r, m, js)
		return
	}
	if rd.since {
		js.recovered, js.from = true, js.since+1
	}
	js.backlog = append(js.backlog, rd.entries...)
	js.covered = rd.to
	w.catchUp(r, m, js)
}

// admit sends m its join reply and backlog and makes it a member.
func (w *worker) admit(r *room, m Member, js *joinState) {
	p := js.pos
	room, _ := protocol.ChannelRoom(r.key.room) // a presence subscription answers with the client's room
	m.Reply(&protocol.Reply{ID: js.id, Room: room, Position: &p, Recovered: js.recovered})
	for i := range js.backlog {
		if js.backlog[i].Offset >= js.from && js.backlog[i].Offset < r.next {
			w.send(m, w.decodeEntry(r, js.backlog[i]))
		}
	}
	r.members[m] = js.from
	w.drain(r)
	w.arm(r)
}

// read reads the room's stream on the worker (gap fills, resyncs).
func (w *worker) read(r *room, from, to uint64) ([]roomlog.Entry, error) {
	w.flush() // what is queued must not wait for Redis
	return w.rangeOf(r, r.epoch, from, to)
}

// rangeOf reads offsets from..to of the room's stream in epoch, bounded by
// storeTimeout. Safe off the worker.
func (w *worker) rangeOf(r *room, epoch string, from, to uint64) ([]roomlog.Entry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return w.h.rlog.Range(ctx, r.key.app, r.key.room, epoch, from, to)
}

func (w *worker) decodeEntry(r *room, e roomlog.Entry) *envelope.Envelope {
	env, err := envelope.Decode(e.Payload)
	if err != nil {
		w.h.log.Error("malformed envelope in recovery stream", "app", r.key.app, "room", r.key.room, "offset", e.Offset, "err", err)
		env = envelope.Envelope{App: r.key.app, Room: r.key.room}
	}
	env.Offset, env.Epoch = e.Offset, r.epoch
	return &env
}

// fanout encodes env once per codec in use and queues the same frame bytes
// on every member that should receive it.
func (w *worker) fanout(r *room, env *envelope.Envelope) {
	if len(r.members) == 0 {
		return
	}
	var cache frameCache
	n := 0
	for m, from := range r.members {
		if env.Offset != 0 && env.Offset < from {
			continue
		}
		if f := cache.get(w.h, m.Codec(), env); f != nil {
			w.queue(m, f)
			n++
		}
	}
	w.h.stats.messages.Add(1)
	w.h.stats.deliveries.Add(uint64(n))
	r.fanned.Add(1)
	if w.h.cfg.FannedOut != nil {
		w.h.cfg.FannedOut(env, n)
	}
}

func (w *worker) send(m Member, env *envelope.Envelope) {
	var cache frameCache
	if f := cache.get(w.h, m.Codec(), env); f != nil {
		w.queue(m, f)
	}
}

// frameCache holds one encoded frame per codec for one message: a message
// is encoded at most once per codec on a node, however many members
// receive it. A failed encoding is remembered too (nil), so it is tried and
// logged once, not once per member.
type frameCache struct {
	codecs [2]protocol.Codec
	frames [2][]byte
	n      int
}

func (c *frameCache) get(h *Hub, codec protocol.Codec, env *envelope.Envelope) []byte {
	for i := 0; i < c.n; i++ {
		if c.codecs[i] == codec {
			return c.frames[i]
		}
	}
	sf := h.cfg.View(env)
	f, err := h.cfg.Frame(codec, &sf)
	if err != nil {
		h.log.Error("encode message", "codec", codec.Subprotocol(), "app", env.App, "room", env.Room, "offset", env.Offset, "err", err)
		f = nil
	}
	if c.n < len(c.codecs) {
		c.codecs[c.n], c.frames[c.n] = codec, f
		c.n++
	}
	return f
}
