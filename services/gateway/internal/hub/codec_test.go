package hub

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// countingFrame encodes like the gateway and counts encodings per codec;
// fail makes one codec's encodings fail.
type countingFrame struct {
	mu   sync.Mutex
	n    map[string]int
	fail protocol.Codec
}

func (c *countingFrame) frame(codec protocol.Codec, f *protocol.ServerFrame) ([]byte, error) {
	c.mu.Lock()
	c.n[codec.Subprotocol()]++
	c.mu.Unlock()
	if codec == c.fail {
		return nil, errors.New("encode failed")
	}
	return codec.AppendServerFrame(nil, f)
}

func (c *countingFrame) count(codec protocol.Codec) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[codec.Subprotocol()]
}

// A message is encoded once per codec on a node, not once per member, and
// members of either codec get the same message; a failed encoding is not
// retried for every member.
func TestOneEncodingPerCodecPerMessage(t *testing.T) {
	t.Parallel()
	for _, fail := range []protocol.Codec{nil, protocol.JSON} {
		rdb, prefix := testenv.Redis(t)
		rlog := roomlog.New(rdb, roomlog.Config{Prefix: prefix})
		cf := &countingFrame{n: map[string]int{}, fail: fail}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))
		h := New(Config{Shards: 4, Workers: 1, Frame: cf.frame}, log, &memBus{subs: map[int]int{}}, rlog)
		t.Cleanup(h.Close)

		var members []*member
		for i := range 6 {
			m := &member{codec: protocol.JSON}
			if i%2 == 1 {
				m.codec = protocol.Msgpack
			}
			if err := h.Join(context.Background(), "a", "r", m, 1, nil); err != nil {
				t.Fatal(err)
			}
			members = append(members, m)
		}
		data := []byte{0, 0xff, 0xc3, 0x28}
		p, err := h.Append(context.Background(), envelope.Envelope{App: "a", Room: "r", Binary: true, Data: data}, "")
		if err != nil {
			t.Fatal(err)
		}
		h.HandleDelivery(0, p.env.Marshal())
		for _, m := range members {
			if m.codec == fail {
				continue
			}
			waitOffsets(t, m, 1)
			m.mu.Lock()
			got := m.msgs[0]
			m.mu.Unlock()
			if !got.Binary || !bytes.Equal(got.Data, data) {
				t.Fatalf("%s member got %+v", m.codec.Subprotocol(), got)
			}
		}
		// Nothing more is coming: every delivery above was queued by the
		// same fan-out.
		if n := cf.count(protocol.Msgpack); n != 1 {
			t.Errorf("fail=%v: msgpack encodings = %d, want 1", fail, n)
		}
		if n := cf.count(protocol.JSON); n != 1 {
			t.Errorf("fail=%v: JSON encodings = %d, want 1 (3 members)", fail, n)
		}
		if fail != nil {
			for _, m := range members {
				if m.codec == fail && len(m.offsets()) != 0 {
					t.Errorf("member of the failing codec got %v", m.offsets())
				}
			}
		}
	}
}
