package client

import (
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// BenchmarkReceiveCoalesced: message frames arrive 100 to a socket write,
// as the gateway coalesces them under load; the client reads, unframes,
// decodes and hands each to its handler. One op is one message (JSON,
// 64-byte payload). Up to 500 messages are in flight, under the client's
// message buffer.
func BenchmarkReceiveCoalesced(b *testing.B) {
	const perWrite, inFlight = 100, 5
	g := newFakeGateway(b)
	c, fc := dial(b, g, Config{})
	var handled atomic.Int64
	progress := make(chan struct{}, 1)
	c.OnMessage("r", func(protocol.Message) {
		if handled.Add(1)%perWrite == 0 {
			progress <- struct{}{}
		}
	})
	joinAt(b, c, fc, "r", protocol.Position{Epoch: "e"})

	data := []byte(`{"ts":1700000000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	var batch []byte
	for range perWrite {
		p, err := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{
			Room: "r", Event: "tick", Data: data, From: "bench", Timestamp: 1700000000000, Transient: true,
		}})
		if err != nil {
			b.Fatal(err)
		}
		f := ws.NewTextFrame(p)
		wire, err := ws.CompileFrame(f)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, wire...)
	}

	writes := (b.N + perWrite - 1) / perWrite
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for range min(inFlight, writes) {
		if _, err := fc.conn.Write(batch); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for done := 0; done < writes; done++ {
		recv(b, progress, "a batch handled")
		if sent < writes {
			if _, err := fc.conn.Write(batch); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
	b.StopTimer()
	if err := c.Err(); err != nil {
		b.Fatal(err)
	}
}
