package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/history/internal/api"
)

type fakeReader struct{ got history.ReadRequest }

func (f *fakeReader) Epochs(context.Context, string, string) ([]string, error) {
	return []string{"e1", "e2"}, nil
}

func (f *fakeReader) Read(_ context.Context, r history.ReadRequest) ([]protocol.Message, error) {
	f.got = r
	return []protocol.Message{{Offset: 7, Epoch: r.Epoch, Data: []byte(`{"a":1}`), Timestamp: 5},
		{Offset: 8, Epoch: r.Epoch, Data: []byte(`{"a":1}`), Binary: true, Timestamp: 6}}, nil
}

// The read API answers only the service token, validates reads, and its
// client (pkg/history.Client) reads what it serves, binary marks included.
func TestReadAPI(t *testing.T) {
	fr := &fakeReader{}
	srv := httptest.NewServer(mux(api.New(fr, "service-token-0123456789", slog.New(slog.DiscardHandler))))
	defer srv.Close()
	ctx := context.Background()

	c := history.NewClient(srv.URL, "service-token-0123456789", nil)
	eps, err := c.Epochs(ctx, "a", "r")
	if err != nil || len(eps) != 2 || eps[1] != "e2" {
		t.Fatalf("epochs %v, %v", eps, err)
	}
	req := history.ReadRequest{App: "a", Room: "r/x y", Epoch: "e1", Min: 3, Max: 1<<64 - 1, Start: 1, End: 9, Backward: true, Limit: 101}
	msgs, err := c.Read(ctx, req)
	if err != nil || len(msgs) != 2 || msgs[0].Offset != 7 || string(msgs[0].Data) != `{"a":1}` || msgs[0].Room != "r/x y" || msgs[0].Binary {
		t.Fatalf("read %+v, %v", msgs, err)
	}
	if m := msgs[1]; m.Offset != 8 || !m.Binary || string(m.Data) != `{"a":1}` {
		t.Fatalf("binary message read as %+v", m)
	}
	if fr.got != req {
		t.Fatalf("server read %+v, want %+v", fr.got, req)
	}

	for _, tok := range []string{"", "wrong"} {
		if _, err := history.NewClient(srv.URL, tok, nil).Epochs(ctx, "a", "r"); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
	for _, q := range []string{"", "?app=a&room=r&epoch=e&limit=0", "?app=a&room=r&epoch=e&limit=5&min=x", "?app=a&room=r&limit=5"} {
		resp, err := http.Get(srv.URL + history.MessagesPath + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token: %d", q, resp.StatusCode)
		}
		r, _ := http.NewRequest(http.MethodGet, srv.URL+history.MessagesPath+q, nil)
		r.Header.Set("Authorization", "Bearer service-token-0123456789")
		resp, err = http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}
	// An empty service token refuses everything.
	srv2 := httptest.NewServer(mux(api.New(fr, "", slog.New(slog.DiscardHandler))))
	defer srv2.Close()
	if _, err := history.NewClient(srv2.URL, "", nil).Epochs(ctx, "a", "r"); err == nil {
		t.Error("empty service token accepted")
	}
}
