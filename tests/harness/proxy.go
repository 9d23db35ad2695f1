package harness

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a round-robin TCP load balancer in front of gateway processes,
// like a Kubernetes Service: each new connection goes to the next backend
// that accepts it. Tests use it where clients must reconnect to "any
// node" after theirs died.
type Proxy struct {
	ln       net.Listener
	backends []string

	mu    sync.Mutex
	next  int
	conns map[net.Conn]struct{}
	done  bool
}

// StartProxy listens on a free loopback port and forwards to backends
// (host:port). It stops when the test ends.
func StartProxy(t testing.TB, backends ...string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// WSURL is the WebSocket endpoint behind the proxy.
func (p *Proxy) WSURL() string { return "ws://" + p.ln.Addr().String() + "/v1/connect" }

// Close stops accepting and cuts every proxied connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.done {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) dial() net.Conn {
	p.mu.Lock()
	start := p.next
	p.next = (p.next + 1) % len(p.backends)
	p.mu.Unlock()
	for i := 0; i < len(p.backends); i++ {
		b := p.backends[(start+i)%len(p.backends)]
		if c, err := net.DialTimeout("tcp", b, time.Second); err == nil {
			return c
		}
	}
	return nil
}

func (p *Proxy) forward(client net.Conn) {
	server := p.dial()
	if server == nil {
		client.Close()
		return
	}
	if !p.track(client, true) || !p.track(server, true) {
		client.Close()
		server.Close()
		return
	}
	defer p.track(client, false)
	defer p.track(server, false)
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		// One side ended: end the other, as a dead node's connections end.
		dst.Close()
		src.Close()
	}
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
}
