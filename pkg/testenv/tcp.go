package testenv

import (
	"net"
	"testing"
)

// TCPPair returns both ends of a fresh loopback TCP connection: the
// accepted (server) side and the dialled (client) side. Both close when the
// test ends.
func TCPPair(t testing.TB) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server.(*net.TCPConn), client
}
