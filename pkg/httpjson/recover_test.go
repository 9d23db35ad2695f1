package httpjson_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestRecoverAnswersInternal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("nil map somewhere") })
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic("after the header")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Error("the wrapped writer lost http.Hijacker (WebSocket upgrades need it)")
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapped writer lost http.Flusher")
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"ok": "yes"})
	})
	srv := httptest.NewServer(httpjson.Recover(log, mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	var body httpjson.Error
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || err != nil || body.Error.Code != protocol.CodeInternal {
		t.Fatalf("panic answered %d %+v (%v), want 500 internal", resp.StatusCode, body, err)
	}
	if !strings.Contains(logs.String(), "nil map somewhere") || !strings.Contains(logs.String(), "recover_test.go") {
		t.Fatalf("panic not logged with its stack: %s", logs.String())
	}
	// The process goes on serving.
	if resp, err := http.Get(srv.URL + "/ok"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after a panic: %v %v", resp, err)
	}
	// An answer already begun is not overwritten.
	if resp, err := http.Get(srv.URL + "/late"); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("late panic: %v %v", resp, err)
	}
}
