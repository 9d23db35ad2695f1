// Package hashring maps rooms to shards.
//
// A room's shard is jump_hash(xxhash64(app + ":" + room), shards). Gateways
// bind their node queue to the AMQP routing key "room.<shard>" rather than
// one key per room, so bindings churn per shard. The mapping must be
// identical on every node of a cluster and stable across releases: changing
// the hash function or the number of shards re-shards every room.
package hashring

import "github.com/cespare/xxhash/v2"

// DefaultShards is the number of shards a cluster uses unless configured
// otherwise. It is fixed for the life of a cluster.
const DefaultShards = 256

// Hash returns the 64-bit xxhash (XXH64, seed 0) of app + ":" + room
// without allocating. App names never contain ':' (see the auth package's
// key syntax), so the joined form is unambiguous; room names may contain
// any character.
func Hash(app, room string) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(app)
	_, _ = d.WriteString(":")
	_, _ = d.WriteString(room)
	return d.Sum64()
}

// Jump is the jump consistent hash of Lamping and Veach
// ("A Fast, Minimal Memory, Consistent Hash Algorithm", 2014): it maps key
// to a bucket in [0, buckets). Growing buckets from n to n+1 moves only
// about 1/(n+1) of the keys, all of them to the new bucket n. It panics if
// buckets < 1, which is a configuration bug.
func Jump(key uint64, buckets int) int {
	if buckets < 1 {
		panic("hashring: Jump with fewer than one bucket")
	}
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// Shard returns the shard in [0, shards) of room in app. It panics if
// shards < 1.
func Shard(app, room string, shards int) int {
	return Jump(Hash(app, room), shards)
}
