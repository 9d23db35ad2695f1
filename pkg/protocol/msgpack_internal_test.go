package protocol

import (
	"runtime"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// A decoder of its own in these tests, not the pool's: the race detector
// makes sync.Pool drop entries at random.
func newTestDecoder() *mpDecoder { return &mpDecoder{d: msgpack.NewDecoder(nil)} }

// TestRecentStrAllocations: a decoder that reads frame after frame of one
// room does not allocate the room, epoch, type, event and sender again.
func TestRecentStrAllocations(t *testing.T) {
	frame, err := Msgpack.AppendServerFrame(nil, &ServerFrame{Message: &Message{
		Room: "game-42", Offset: 7, Epoch: "e1", Event: "move", From: "user-1", Timestamp: 1, Data: []byte{1, 2}, Binary: true}})
	if err != nil {
		t.Fatal(err)
	}
	m := newTestDecoder()
	decode := func() {
		m.reset(frame)
		f, err := m.serverFrame()
		if err != nil || f.Message == nil || f.Message.Room != "game-42" {
			t.Fatalf("decode: %+v, %v", f, err)
		}
	}
	decode()
	// The *Message and its data are left; with a fresh string per field
	// this was 7.
	if n := testing.AllocsPerRun(100, decode); n > 2 {
		t.Errorf("%v allocations per repeated frame, want at most 2", n)
	}
}

// TestHugeDeclaredLengthsDoNotGrowTheDecoder: frames whose str, bin or ext
// values claim far more bytes than they carry are refused without the
// decoder allocating towards the claim. msgpack's decoder grows (and
// keeps) its buffer by 1 MiB per such value; a client repeating the frame
// grew the gateway by a MiB per frame until the fuzzer found it.
func TestHugeDeclaredLengthsDoNotGrowTheDecoder(t *testing.T) {
	frames := []string{
		"\x81\xa1x\xdb\x30\x30\x30\x30",                   // unknown key; its str32 value is skipped
		"\x81\x30\xdb\x30\x30\x30\x30",                    // a key that is not a str, then the str32
		"\x82\xa2id\x01\xa4room\xdb\x30\x30\x30\x30",      // a room str32
		"\x82\xa2id\x01\xa4data\xc6\x30\x30\x30\x30",      // a data bin32
		"\x82\xa2id\x01\xa5event\xc9\x30\x30\x30\x30\x01", // an ext32 where a str goes
		"\x82\xa2id\x01\xa1x\x91\xc5\x30\x30",             // a bin16 in a skipped array
		"\x82\xa2id\x01\xa4room\xd9\x30" + "short",        // a str8 longer than the frame
	}
	m := newTestDecoder()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 50 {
		for _, f := range frames {
			m.reset([]byte(f))
			if _, _, _, _, err := m.command(); err == nil && m.typeErr == "" {
				t.Fatalf("frame %q accepted", f)
			}
		}
	}
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Errorf("decoding %d short frames allocated %d KiB", 50*len(frames), grown>>10)
	}
}
