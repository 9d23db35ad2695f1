package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/roomcast/roomcast/pkg/events"
)

// message.published events carry a payload by its binary mark: data for
// JSON, data_base64 for bytes (even bytes that are JSON text); unmarked
// data that is not JSON (from a gateway that predates the mark) is bytes.
func TestMessagePublishedDataFollowsBinaryMark(t *testing.T) {
	in := New(nil, "p:", nil, nil, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name    string
		payload events.Published
		old     []byte // a payload as an older gateway sent it, instead
		want    string
	}{
		{name: "json", payload: events.PublishedFrom("a", "r", 1, "e", "", "", false, false, []byte(`{"a":1}`), 1), want: `{"a":1}`},
		{name: "binary JSON text", payload: events.PublishedFrom("a", "r", 2, "e", "", "", false, true, []byte(`{"a":1}`), 1), want: `"eyJhIjoxfQ=="`},
		{name: "binary", payload: events.PublishedFrom("a", "r", 3, "e", "", "", false, true, []byte{0, 0xff}, 1), want: `"AP8="`},
		{name: "unmarked bytes", old: []byte(`{"v":1,"app":"a","room":"r","offset":4,"epoch":"e","data":"AP8=","bytes":2,"at":1}`), want: `"AP8="`},
		{name: "no data", payload: events.PublishedFrom("a", "r", 5, "e", "", "", false, true, nil, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task, err := events.NewTask(events.TypeMessagePublished, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if tc.old != nil {
				task, _ = events.NewTask(events.TypeMessagePublished, json.RawMessage(tc.old))
			}
			evs, err := in.events(context.Background(), task)
			if err != nil || len(evs) != 1 {
				t.Fatalf("events %+v, %v", evs, err)
			}
			var d map[string]json.RawMessage
			if err := json.Unmarshal(evs[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			data, b64 := d["data"], d["data_base64"]
			switch {
			case tc.want == "":
				if data != nil || b64 != nil {
					t.Fatalf("event data %s: want neither data nor data_base64", evs[0].Data)
				}
			case tc.want[0] == '"':
				if data != nil || string(b64) != tc.want {
					t.Fatalf("event data %s: want data_base64 %s", evs[0].Data, tc.want)
				}
			default:
				if b64 != nil || string(data) != tc.want {
					t.Fatalf("event data %s: want data %s", evs[0].Data, tc.want)
				}
			}
		})
	}
}
