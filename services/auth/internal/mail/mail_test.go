package mail

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestLogSenderLogsCodeAndLink(t *testing.T) {
	var buf bytes.Buffer
	l := Log{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	if err := l.Send(context.Background(), Message{App: "a", To: "x@example.com", Kind: KindVerify, Code: "123456", Link: "https://app/v?c=123456"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"code":"123456"`) || !strings.Contains(buf.String(), "https://app/v?c=123456") {
		t.Fatalf("log: %s", buf.String())
	}
}

func TestAsyncDelivers(t *testing.T) {
	var c Capture
	a := NewAsync(&c, slog.New(slog.DiscardHandler), 2, 10)
	for range 5 {
		_ = a.Send(context.Background(), Message{To: "A@example.com", Kind: KindReset, Code: "1"})
	}
	a.Close()
	if len(c.Sent()) != 5 {
		t.Fatalf("sent %d, want 5", len(c.Sent()))
	}
	if _, ok := c.Last("a@example.com", KindReset); !ok {
		t.Fatal("Last ignores case")
	}
}

// A minimal SMTP server on port 0 receives the mail net/smtp sends.
func TestSMTPSends(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		w := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
		w("220 test")
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if inData {
				if line == ".\r\n" {
					inData = false
					w("250 ok")
					got <- data.String()
					continue
				}
				data.WriteString(line)
				continue
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				w("250 test")
			case cmd == "DATA":
				inData = true
				w("354 go")
			case cmd == "QUIT":
				w("221 bye")
				return
			default:
				w("250 ok")
			}
		}
	}()
	s, err := NewSMTP("smtp://"+ln.Addr().String(), "noreply@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), Message{To: "u@example.com", Kind: KindSignIn, Code: "654321"}); err != nil {
		t.Fatal(err)
	}
	if msg := <-got; !strings.Contains(msg, "654321") || !strings.Contains(msg, "To: u@example.com") {
		t.Fatalf("mail: %q", msg)
	}
	if _, err := NewSMTP("http://x", "a@b"); err == nil {
		t.Fatal("non-smtp URL accepted")
	}
}
