package protocol_test

import (
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestValidateRoom(t *testing.T) {
	const max = 8
	tests := []struct {
		name  string
		room  string
		max   int
		valid bool
	}{
		{"empty", "", max, false},
		{"one byte", "a", max, true},
		{"exactly the cap", "abcdefgh", max, true},
		{"one over the cap", "abcdefghi", max, false},
		{"far over the cap", strings.Repeat("a", 10000), max, false},
		{"cap counts bytes not runes: 4×é = 8 bytes", "éééé", max, true},
		{"cap counts bytes not runes: 4×é+a = 9 bytes", "ééééa", max, false},
		{"emoji at the cap", "🎉🎉", max, true},
		{"emoji over the cap", "🎉🎉a", max, false},
		{"zero cap rejects everything", "a", 0, false},
		{"default-size cap", strings.Repeat("r", 200), 200, true},

		{"invalid UTF-8 byte", "a\xffb", max, false},
		{"truncated UTF-8 sequence", "ab\xe2\x82", max, false},
		{"UTF-16 surrogate encoded in UTF-8", "\xed\xa0\x80", max, false},
		{"overlong encoding of /", "\xc0\xaf", max, false},

		{"NUL", "a\x00b", max, false},
		{"tab", "a\tb", max, false},
		{"newline", "a\nb", max, false},
		{"carriage return", "a\rb", max, false},
		{"escape", "\x1b[31m", max, false},
		{"unit separator 0x1f", "a\x1f", max, false},
		{"DEL 0x7f", "a\x7fb", max, false},
		{"control char only", "\x01", max, false},

		{"space 0x20", "a b", max, true},
		{"tilde 0x7e", "~", max, true},
		{"dot", "a.b.c", max, true},
		{"star", "chat.*", max, true},
		{"hash", "orders.#", max, true},
		{"colon", "app:room", max, true},
		{"slash", "a/b/c", max, true},
		{"all specials", `.*#:/"\<>&%?=+@!`, 32, true},
		{"cyrillic", "комната", 64, true},
		{"CJK", "部屋", max, true},
		{"replacement char is a valid rune", "\uFFFD", max, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := protocol.ValidateRoom(tc.room, tc.max)
			if tc.valid {
				if err != nil {
					t.Fatalf("ValidateRoom(%q, %d) = %v, want nil", tc.room, tc.max, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateRoom(%q, %d) = nil, want %s", tc.room, tc.max, protocol.CodeInvalidRoom)
			}
			if err.Code != protocol.CodeInvalidRoom {
				t.Fatalf("ValidateRoom(%q, %d) code = %s, want %s", tc.room, tc.max, err.Code, protocol.CodeInvalidRoom)
			}
			if err.Message == "" {
				t.Error("no message")
			}
			if len(tc.room) >= 3 && strings.Contains(err.Message, tc.room) {
				t.Errorf("message echoes the room name: %q", err.Message)
			}
		})
	}
}

func TestPresenceChannelNames(t *testing.T) {
	for _, room := range []string{"lobby", "a.b:c/d", "x\x1fpresence"} {
		ch := protocol.PresenceChannel(room)
		if got, ok := protocol.ChannelRoom(ch); !ok || got != room {
			t.Errorf("ChannelRoom(PresenceChannel(%q)) = %q, %v", room, got, ok)
		}
		if protocol.ValidateRoom(ch, 1000) == nil {
			t.Errorf("presence channel of %q is a valid client room name: clients could join it", room)
		}
	}
	if _, ok := protocol.ChannelRoom("lobby"); ok {
		t.Error("a client room reported as a presence channel")
	}
}
