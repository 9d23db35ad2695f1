package hub

// RoomLive is what this node knows of a room for live metrics: its local
// members and how many of its messages the node fanned out so far.
type RoomLive struct {
	Members  int
	Messages uint64
}

// Live returns a room's local numbers; ok is false when the room has no
// local member.
func (h *Hub) Live(app, name string) (RoomLive, bool) {
	h.mu.RLock()
	r := h.rooms[roomKey{app, name}]
	var refs int
	if r != nil {
		refs = r.refs
	}
	h.mu.RUnlock()
	if r == nil {
		return RoomLive{}, false
	}
	return RoomLive{Members: refs, Messages: r.fanned.Load()}, true
}
