package conn

import "iter"

// roomSet is the set of hub rooms a connection is in. Most connections are
// in a few rooms, kept in a short slice (a one-room connection pays 16
// bytes, where a map pays ~190); past fewRooms the set becomes a map.
type roomSet struct {
	few  []string
	many map[string]struct{}
}

const fewRooms = 16

func (s *roomSet) has(room string) bool {
	if s.many != nil {
		_, ok := s.many[room]
		return ok
	}
	for _, r := range s.few {
		if r == room {
			return true
		}
	}
	return false
}

func (s *roomSet) len() int {
	if s.many != nil {
		return len(s.many)
	}
	return len(s.few)
}

// add adds a room that is not in the set.
func (s *roomSet) add(room string) {
	if s.many != nil {
		s.many[room] = struct{}{}
		return
	}
	if len(s.few) < fewRooms {
		s.few = append(s.few, room)
		return
	}
	s.many = make(map[string]struct{}, 2*fewRooms)
	for _, r := range s.few {
		s.many[r] = struct{}{}
	}
	s.many[room] = struct{}{}
	s.few = nil
}

func (s *roomSet) remove(room string) {
	if s.many != nil {
		delete(s.many, room)
		return
	}
	for i, r := range s.few {
		if r == room {
			last := len(s.few) - 1
			s.few[i] = s.few[last]
			s.few[last] = ""
			s.few = s.few[:last]
			if last == 0 {
				s.few = nil
			}
			return
		}
	}
}

// all yields every room; the set must not change meanwhile.
func (s *roomSet) all() iter.Seq[string] {
	return func(yield func(string) bool) {
		if s.many != nil {
			for r := range s.many {
				if !yield(r) {
					return
				}
			}
			return
		}
		for _, r := range s.few {
			if !yield(r) {
				return
			}
		}
	}
}
