package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORSOnlyOnEndUserEndpoints(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/apps/{app}/auth/signin", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /admin/v1/apps", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	h := CORS(mux, []string{"https://app.example.com"})

	do := func(method, path, origin string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Origin", origin)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// The browser's preflight for a JSON POST with a bearer token.
	w := do(http.MethodOptions, "/v1/apps/demo/auth/signin", "https://app.example.com",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if w.Code/100 != 2 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("preflight: %d, headers %v", w.Code, w.Header())
	}
	w = do(http.MethodPost, "/v1/apps/demo/auth/signin", "https://app.example.com")
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		w.Header().Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("request: %d, headers %v", w.Code, w.Header())
	}
	// Another origin gets no grant.
	if w := do(http.MethodPost, "/v1/apps/demo/auth/signin", "https://evil.example"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin granted: %v", w.Header())
	}
	// The admin API never answers cross-origin.
	if w := do(http.MethodPost, "/admin/v1/apps", "https://app.example.com"); w.Code != http.StatusCreated || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("admin endpoint: %d, headers %v", w.Code, w.Header())
	}
	// No origins configured: the handler is untouched.
	if got := CORS(mux, nil); got != http.Handler(mux) {
		t.Fatal("CORS without origins wrapped the handler")
	}
}
