package history

import (
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{Epoch: "5d1c9e0a7b2f4e11", Offset: 1 << 40, Query: 0xfeedface}
	got, err := decodeCursor(encodeCursor(c))
	if err != nil || got != c {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// FuzzDecodeCursor: any string either fails cleanly or decodes to a cursor
// whose encoding is that very string. Seeds are in testdata/fuzz.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(cursor{Epoch: "5d1c9e0a7b2f4e11", Offset: 7, Query: 42}))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		if encodeCursor(c) != s || c.Offset == 0 || c.Epoch == "" {
			t.Fatalf("%q decoded to %+v", s, c)
		}
	})
}
