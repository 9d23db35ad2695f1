package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

const apiKey = "demo.k1:secret-secret-0123456789"

// server answers with the given statuses in turn (the last one repeats).
func server(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if r.Header.Get("Authorization") != "Bearer "+apiKey {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		st := statuses[min(i, len(statuses)-1)]
		w.Header().Set("Content-Type", "application/json")
		if st != 200 {
			w.WriteHeader(st)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"try later"}}`))
			return
		}
		switch r.URL.Path {
		case "/v1/messages":
			_, _ = w.Write([]byte(`{"room":"r","offset":7,"epoch":"e"}`))
		case "/v1/messages/batch":
			_, _ = w.Write([]byte(`{"results":[{"room":"a","offset":1,"epoch":"e"},{"room":"b","error":{"code":"forbidden","message":"no"}}]}`))
		case "/v1/tokens":
			_, _ = w.Write([]byte(`{"token":"t.t.t","expires_at":"2030-01-01T00:00:00Z","kid":"sk1"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func client(t *testing.T, url string) *Client {
	c, err := New(Config{GatewayURL: url, AuthURL: url, APIKey: apiKey, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPublishRetriesOnlyWithAnIdempotencyKey(t *testing.T) {
	srv, n := server(t, 503, 429, 200)
	res, err := client(t, srv.URL).Publish(context.Background(), Message{Room: "r", Data: json.RawMessage(`1`), IdempotencyKey: "k"})
	if err != nil || res.Offset != 7 || res.Epoch != "e" || n.Load() != 3 {
		t.Fatalf("Publish = %+v, %v after %d requests", res, err, n.Load())
	}

	srv, n = server(t, 503, 200)
	_, err = client(t, srv.URL).Publish(context.Background(), Message{Room: "r", Data: json.RawMessage(`1`)})
	var e *Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != "unavailable" || !e.Temporary() || n.Load() != 1 {
		t.Fatalf("publish without a key: %v after %d requests", err, n.Load())
	}

	srv, n = server(t, 400)
	_, err = client(t, srv.URL).Publish(context.Background(), Message{Room: "r", Data: json.RawMessage(`1`), IdempotencyKey: "k"})
	if !errors.As(err, &e) || e.Status != 400 || e.Temporary() || n.Load() != 1 {
		t.Fatalf("4xx retried or mistyped: %v after %d requests", err, n.Load())
	}

	srv, n = server(t, 503)
	_, err = client(t, srv.URL).Publish(context.Background(), Message{Room: "r", Data: json.RawMessage(`1`), IdempotencyKey: "k"})
	if !errors.As(err, &e) || n.Load() != 4 {
		t.Fatalf("gave up after %d requests (%v), want 1 + 3 retries", n.Load(), err)
	}
}

func TestPublishHonoursContext(t *testing.T) {
	srv, _ := server(t, 503)
	c, _ := New(Config{GatewayURL: srv.URL, APIKey: apiKey, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Publish(ctx, Message{Room: "r", Data: json.RawMessage(`1`), IdempotencyKey: "k"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestPublishBatch(t *testing.T) {
	srv, n := server(t, 502, 200)
	msgs := []Message{{Room: "a", Data: json.RawMessage(`1`), IdempotencyKey: "1"}, {Room: "b", Data: json.RawMessage(`2`), IdempotencyKey: "2"}}
	res, err := client(t, srv.URL).PublishBatch(context.Background(), msgs)
	if err != nil || len(res) != 2 || res[0].Offset != 1 || res[0].Err != nil || res[1].Err == nil || res[1].Err.Code != "forbidden" || n.Load() != 2 {
		t.Fatalf("PublishBatch = %+v, %v after %d", res, err, n.Load())
	}
	srv, n = server(t, 502, 200)
	msgs[1].IdempotencyKey = ""
	if _, err := client(t, srv.URL).PublishBatch(context.Background(), msgs); err == nil || n.Load() != 1 {
		t.Fatalf("a batch with a message without key was retried: %v after %d", err, n.Load())
	}
}

func TestTokens(t *testing.T) {
	srv, _ := server(t, 500, 200)
	c := client(t, srv.URL)
	tok, err := c.RequestToken(context.Background(), TokenRequest{ClientID: "alice", TTL: time.Minute})
	if err != nil || tok.Token != "t.t.t" || tok.KeyID != "sk1" || tok.ExpiresAt.Year() != 2030 {
		t.Fatalf("RequestToken = %+v, %v", tok, err)
	}
	local, err := c.CreateToken("bob", token.Capabilities{"chat.*": {token.OpJoin}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := token.ParseAPIKey(apiKey)
	claims, err := (&token.Verifier{Keys: token.NewStaticKeyring(k)}).Verify(local)
	if err != nil || claims.App != "demo" || claims.ClientID() != "bob" {
		t.Fatalf("local token: %+v, %v", claims, err)
	}
	if _, err := New(Config{APIKey: "demo.k1:short"}); err == nil {
		t.Fatal("bad API key accepted")
	}
}
