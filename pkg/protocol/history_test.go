package protocol_test

import (
	"reflect"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestHistoryCommandRoundTrip(t *testing.T) {
	roundTripCommand(t, protocol.Command{ID: 9, Op: protocol.OpHistory, Room: "r", Cursor: "c", Limit: 10,
		History: &protocol.HistoryQuery{Epoch: "e", FromOffset: 1, ToOffset: 2, Start: 3, End: 4, Backward: true}})
	roundTripCommand(t, protocol.Command{ID: 9, Op: protocol.OpHistory, Room: "r", History: &protocol.HistoryQuery{}})
	// Every decoded history command has its query, even with no field set.
	c, err := protocol.JSON.DecodeCommand([]byte(`{"id":1,"op":"history","room":"r","direction":"forward"}`))
	if err != nil || c.History == nil || c.History.Backward {
		t.Fatalf("%+v, %v", c, err)
	}
	for frame, code := range map[string]protocol.Code{
		`{"id":1,"op":"history","room":"r","direction":"up"}`: protocol.CodeBadRequest,
		`{"id":1,"op":"history","room":"r","end":-5}`:         protocol.CodeBadRequest,
	} {
		_, err := protocol.JSON.DecodeCommand([]byte(frame))
		perr, ok := err.(*protocol.Error)
		if !ok || perr.Code != code || perr.ID != 1 {
			t.Errorf("%s: %v, want %s with id 1", frame, err, code)
		}
	}
}

func TestHistoryReplyRoundTrip(t *testing.T) {
	in := protocol.ServerFrame{Reply: &protocol.Reply{ID: 3, Room: "r", Cursor: "next", Messages: []protocol.Message{
		{Room: "r", Offset: 1, Epoch: "e", Event: "ev", Data: []byte(`{"a":1}`), From: "u", Timestamp: 5},
		{Room: "r", Offset: 2, Epoch: "e", Timestamp: 6},
	}}}
	frame, err := protocol.JSON.AppendServerFrame(nil, &in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := protocol.JSON.DecodeServerFrame(frame)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("%s\nout %+v, %v", frame, out.Reply, err)
	}
	bad := protocol.ServerFrame{Reply: &protocol.Reply{ID: 3, Messages: []protocol.Message{{Offset: 1, Data: []byte{0xff}}}}}
	if _, err := protocol.JSON.AppendServerFrame(nil, &bad); err == nil {
		t.Fatal("binary history data encoded into a text frame")
	}
}
