package hashring

import (
	"fmt"
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestHashVectors pins Hash: a change of hash function would re-shard every
// room of every running cluster, so it must fail loudly here.
func TestHashVectors(t *testing.T) {
	// XXH64 with seed 0 of the empty input, from the xxHash specification:
	// proves the library computes standard XXH64.
	if got := xxhash.Sum64String(""); got != 0xef46db3751d8e999 {
		t.Fatalf("xxhash of empty input = %#x, want 0xef46db3751d8e999", got)
	}
	tests := []struct {
		app, room string
		hash      uint64
		shard256  int
		shard16   int
	}{
		{"", "", 0x787f005495551c49, 172, 13},
		{"app", "room", 0x9049c25993fd9182, 126, 13},
		{"demo", "chat.general", 0x73c98a61428763d6, 151, 0},
		{"demo", "a*b#c:d/e", 0x9fa7445aacc6fd44, 64, 8},
		{"acme", "комната/日本語", 0xb5fdda3593f1947b, 199, 7},
		{"acme", "x", 0x89bebd7d6eccbea4, 3, 3},
	}
	for _, tt := range tests {
		if got := Hash(tt.app, tt.room); got != tt.hash {
			t.Errorf("Hash(%q, %q) = %#x, want %#x", tt.app, tt.room, got, tt.hash)
		}
		if got, want := Hash(tt.app, tt.room), xxhash.Sum64String(tt.app+":"+tt.room); got != want {
			t.Errorf("Hash(%q, %q) = %#x, but xxhash64 of the joined string is %#x", tt.app, tt.room, got, want)
		}
		if got := Shard(tt.app, tt.room, DefaultShards); got != tt.shard256 {
			t.Errorf("Shard(%q, %q, 256) = %d, want %d", tt.app, tt.room, got, tt.shard256)
		}
		if got := Shard(tt.app, tt.room, 16); got != tt.shard16 {
			t.Errorf("Shard(%q, %q, 16) = %d, want %d", tt.app, tt.room, got, tt.shard16)
		}
	}
}

// TestJumpReference checks Jump against outputs of the reference C++ code
// from the paper, for buckets 1, 2, 3, ...
func TestJumpReference(t *testing.T) {
	tests := []struct {
		key     uint64
		buckets []int
	}{
		{0, []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{1, []int{0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17}},
		{0xdeadbeef, []int{0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16}},
		{0x0ddc0ffeebadf00d, []int{0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15}},
	}
	for _, tt := range tests {
		for i, want := range tt.buckets {
			if got := Jump(tt.key, i+1); got != want {
				t.Errorf("Jump(%#x, %d) = %d, want %d", tt.key, i+1, got, want)
			}
		}
	}
}

func TestJumpPanicsOnNoBuckets(t *testing.T) {
	for _, n := range []int{0, -1, math.MinInt} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Jump(1, %d) did not panic", n)
				}
			}()
			Jump(1, n)
		}()
	}
}

func TestJumpInRange(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 255, 256, 1 << 20} {
		for i := range 1000 {
			key := xxhash.Sum64String(fmt.Sprint(i))
			if got := Jump(key, n); got < 0 || got >= n {
				t.Fatalf("Jump(%#x, %d) = %d, out of range", key, n, got)
			}
		}
	}
}

func roomName(i int) string { return fmt.Sprintf("room-%d", i) }

func TestBalance(t *testing.T) {
	const rooms, shards = 100_000, DefaultShards
	counts := make([]int, shards)
	for i := range rooms {
		counts[Shard("app", roomName(i), shards)]++
	}
	mean := float64(rooms) / shards
	lo, hi := int(math.Ceil(mean*0.75)), int(math.Floor(mean*1.25))
	for s, c := range counts {
		if c < lo || c > hi {
			t.Errorf("shard %d holds %d rooms, want within ±25%% of the mean %.1f [%d, %d]", s, c, mean, lo, hi)
		}
	}
}

// TestGrowMovesFewRooms checks the consistent-hash property: going from n to
// n+1 shards moves about 1/(n+1) of the rooms, and only to the new shard n.
func TestGrowMovesFewRooms(t *testing.T) {
	const rooms = 100_000
	for _, n := range []int{1, 16, 64, 255, 256} {
		moved := 0
		for i := range rooms {
			r := roomName(i)
			before, after := Shard("app", r, n), Shard("app", r, n+1)
			if before == after {
				continue
			}
			moved++
			if after != n {
				t.Fatalf("n=%d: room %q moved from shard %d to %d, want the new shard %d", n, r, before, after, n)
			}
		}
		want := float64(rooms) / float64(n+1)
		if math.Abs(float64(moved)-want) > want*0.25 {
			t.Errorf("n=%d→%d: %d rooms moved, want about %.0f (±25%%)", n, n+1, moved, want)
		}
	}
}

// TestRoomNames checks that rooms whose names use separators, wildcards and
// non-ASCII characters are ordinary keys: deterministic, in range, and not
// collapsed onto one another.
func TestRoomNames(t *testing.T) {
	names := []string{
		"a.b", "a*b", "a#b", "a:b", "a/b", "*", "#", ".", ":", "/", "a.b.c.*.#",
		"chat:general", "chat/general", "chat.general", "日本語", "комната", "emoji-🎉",
		"e\u0301", "\u00e9", // NFD and NFC é are different rooms
	}
	seen := make(map[uint64]string)
	for _, name := range names {
		h := Hash("app", name)
		if h != Hash("app", name) {
			t.Errorf("Hash(app, %q) is not deterministic", name)
		}
		if other, ok := seen[h]; ok {
			t.Errorf("rooms %q and %q hash alike", name, other)
		}
		seen[h] = name
		if s := Shard("app", name, DefaultShards); s < 0 || s >= DefaultShards {
			t.Errorf("Shard(app, %q) = %d, out of range", name, s)
		}
	}
	// The app is part of the key: the same room in two apps hashes apart.
	if Hash("a", "room") == Hash("b", "room") {
		t.Error("same room in different apps hashes alike")
	}
}

func TestHashDoesNotAllocate(t *testing.T) {
	room := "chat.general.some-fairly-long-room-name/with:separators#and*stars-日本語"
	if n := testing.AllocsPerRun(100, func() { _ = Shard("app", room, DefaultShards) }); n != 0 {
		t.Errorf("Shard allocates %.0f times per call, want 0", n)
	}
}

var sink int

func BenchmarkShard(b *testing.B) {
	rooms := make([]string, 1024)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("chat.room-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sink += Shard("app", rooms[i&1023], DefaultShards)
		i++
	}
}
