package protocol

import (
	"reflect"
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

// fastMessageSeeds are message frames as the encoder writes them, and a
// few it does not.
func fastMessageSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, m := range []Message{
		{Room: "r", Offset: 1, Epoch: "e", Timestamp: 1, Data: []byte(`{"a":1}`)},
		{Room: "game-42", Offset: 1 << 40, Epoch: "e1", Event: "move", From: "user-1", Timestamp: -5, Data: []byte{0, 1, 2}, Binary: true},
		{Room: "r", Transient: true, Timestamp: 1 << 50, Data: []byte(`"x"`)},
		{Room: "ключ", Offset: 200, Epoch: "é", Data: []byte{}, Binary: true},
	} {
		f, err := Msgpack.AppendServerFrame(nil, &ServerFrame{Message: &m})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return append(out,
		[]byte("\x82\xa4type\xa7message\xa4room\xc0"),         // a nil room
		[]byte("\x82\xa4type\xa7message\xa6offset\xd0\xff"),   // a negative offset
		[]byte("\x82\xa4type\xa7message\xa4data\xc4\x00"),     // empty bin
		[]byte("\x81\xa4type\xa5reply"),                       // another type
		[]byte("\x82\xa4type\xa7message\xa4room\xa2\xff\xfe"), // invalid UTF-8
	)
}

// FuzzFastMessage: whatever the fast path accepts, the general decoder
// accepts too, with the same message.
func FuzzFastMessage(f *testing.F) {
	for _, s := range fastMessageSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		fast := newTestDecoder()
		fast.reset(frame)
		msg, ok := fast.fastMessage()
		if !ok {
			return
		}
		slow := newTestDecoder()
		slow.reset(frame)
		sf, err := slow.serverFrame()
		if err != nil || slow.r.Len() != 0 || slow.typeErr != "" || sf.Message == nil {
			t.Fatalf("fast path accepted %q; the general decoder: %+v, %v, %d bytes left, %q", frame, sf, err, slow.r.Len(), slow.typeErr)
		}
		if !reflect.DeepEqual(*sf.Message, *msg) {
			t.Fatalf("fast path read %q as %+v; the general decoder as %+v", frame, *msg, *sf.Message)
		}
	})
}

// TestFastMessageTakesWhatTheEncoderWrites: every message frame the
// encoder writes goes through the fast path.
func TestFastMessageTakesWhatTheEncoderWrites(t *testing.T) {
	for _, frame := range fastMessageSeeds(t)[:4] {
		m := newTestDecoder()
		m.reset(frame)
		if _, ok := m.fastMessage(); !ok {
			t.Errorf("fast path refused %q", frame)
		}
	}
}
