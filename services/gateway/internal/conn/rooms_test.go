package conn

import (
	"fmt"
	"slices"
	"testing"
)

func TestRoomSet(t *testing.T) {
	var s roomSet
	want := map[string]bool{}
	check := func(step string) {
		t.Helper()
		if s.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", step, s.len(), len(want))
		}
		var got []string
		for r := range s.all() {
			got = append(got, r)
			if !want[r] {
				t.Fatalf("%s: %q in the set, not expected", step, r)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: all yields %d rooms, want %d", step, len(got), len(want))
		}
		for r := range want {
			if !s.has(r) {
				t.Fatalf("%s: %q missing", step, r)
			}
		}
		if s.has("never") {
			t.Fatalf("%s: has a room never added", step)
		}
	}
	// Grow through the slice into the map, then shrink.
	for i := range 3 * fewRooms {
		r := fmt.Sprintf("room-%d", i)
		s.add(r)
		want[r] = true
		check("add " + r)
	}
	if s.many == nil {
		t.Fatal("no map past fewRooms rooms")
	}
	for _, i := range []int{0, 5, 3*fewRooms - 1} {
		r := fmt.Sprintf("room-%d", i)
		s.remove(r)
		delete(want, r)
		check("remove " + r)
	}

	var small roomSet
	for _, r := range []string{"a", "b", "c"} {
		small.add(r)
	}
	small.remove("a")
	small.remove("x") // absent: nothing happens
	got := slices.Sorted(small.all())
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after removing a: %v", got)
	}
	small.remove("b")
	small.remove("c")
	if small.len() != 0 || small.few != nil {
		t.Fatalf("emptied set keeps %v", small.few)
	}
}
