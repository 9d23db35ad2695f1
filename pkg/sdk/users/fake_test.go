package users

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAuth is a small stand-in for the auth service's end-user endpoints
// of app "shop", enough to check the SDK's requests, answers and refresh
// handling: rotating refresh tokens with reuse detection, as
// docs/users-api.md describes. Its access tokens are unsigned JWTs with
// iat and exp.
type fakeAuth struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	expIn     time.Duration // exp = now + expIn
	refresh   map[string]*fakeRefresh
	access    map[string]string // access token → session id
	revoked   map[string]bool   // session ids
	refreshes int               // POST /refresh calls
	requests  []fakeRequest
	// hold, if set, makes /refresh wait until it is closed.
	hold chan struct{}
	// fail, if set, answers the next requests to path with status/code
	// (consumed one per request).
	fail map[string][]fakeFailure
	mfa  string        // sign-in answers with an MFA challenge of this method
	skew time.Duration // how far the clients' clocks were moved forward
}

type fakeRefresh struct {
	session string
	retired bool
}

type fakeRequest struct {
	Method, Path, Bearer, UserAgent string
	Body                            map[string]any
}

type fakeFailure struct {
	status     int
	code       string
	retryAfter string
}

func newFakeAuth(t *testing.T) *fakeAuth {
	f := &fakeAuth{t: t, expIn: 5 * time.Minute, refresh: map[string]*fakeRefresh{}, access: map[string]string{},
		revoked: map[string]bool{}, fail: map[string][]fakeFailure{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client is a Client of the fake whose clock the test moves with
// advance.
func (f *fakeAuth) client(t *testing.T, mod ...func(*Config)) *Client {
	cfg := Config{AuthURL: f.srv.URL, App: "shop"}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return time.Now().Add(f.skew)
	}
	return c
}

// advance moves the clients' clocks forward.
func (f *fakeAuth) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.skew += d
}

func (f *fakeAuth) failNext(path string, status int, code, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[path] = append(f.fail[path], fakeFailure{status, code, retryAfter})
}

func (f *fakeAuth) refreshCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

func (f *fakeAuth) last(path string) fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i].Path == path {
			return f.requests[i]
		}
	}
	f.t.Fatalf("no request to %s", path)
	return fakeRequest{}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fakeJWT(sub string, iat, exp time.Time) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return enc(`{"alg":"EdDSA"}`) + "." + enc(fmt.Sprintf(`{"sub":%q,"iat":%d,"exp":%d,"jti":%q}`, sub, iat.Unix(), exp.Unix(), randHex(4))) + ".c2ln"
}

const fakeUserID = "uabcdefghijklmnopqrst"

// issueLocked answers with a session: new tokens for session id sid.
func (f *fakeAuth) issueLocked(w http.ResponseWriter, sid string) {
	now := time.Now()
	at := fakeJWT(fakeUserID, now, now.Add(f.expIn))
	rt := "rt_" + randHex(16)
	f.access[at] = sid
	f.refresh[rt] = &fakeRefresh{session: sid}
	writeJSON(w, 200, map[string]any{
		"user":       map[string]any{"id": fakeUserID, "email": "ada@example.com", "email_verified": true, "anonymous": false, "mfa": []string{}, "created_at": "2026-11-23T10:00:00Z"},
		"session_id": sid, "access_token": at, "access_expires_at": now.Add(f.expIn).UTC().Format(time.RFC3339Nano),
		"refresh_token": rt, "refresh_expires_at": now.Add(time.Hour).UTC().Format(time.RFC3339Nano),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": code + " (fake)"}})
}

func (f *fakeAuth) serve(w http.ResponseWriter, r *http.Request) {
	const prefix = "/v1/apps/shop/auth"
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		writeErr(w, 404, "not_found")
		return
	}
	var body map[string]any
	if r.Body != nil && r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeErr(w, 400, "bad_request")
			return
		}
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	str := func(k string) string { s, _ := body[k].(string); return s }

	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{r.Method, path, bearer, r.UserAgent(), body})
	if path == "/refresh" {
		f.refreshes++
	}
	if q := f.fail[path]; len(q) > 0 {
		f.fail[path] = q[1:]
		f.mu.Unlock()
		if q[0].retryAfter != "" {
			w.Header().Set("Retry-After", q[0].retryAfter)
		}
		writeErr(w, q[0].status, q[0].code)
		return
	}
	hold := f.hold
	f.mu.Unlock()
	if path == "/refresh" && hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()

	// Bearer endpoints.
	sid := ""
	if bearer != "" {
		sid = f.access[bearer]
		if sid == "" || f.revoked[sid] {
			writeErr(w, 401, "unauthorized")
			return
		}
	}
	needBearer := func() bool {
		if sid == "" {
			writeErr(w, 401, "unauthorized")
			return false
		}
		return true
	}
	switch r.Method + " " + path {
	case "POST /signup", "POST /verify/resend", "POST /signin/code", "POST /password/reset":
		writeJSON(w, 202, map[string]string{"status": "verification_sent"})
		return
	case "POST /verify", "POST /password/reset/confirm", "POST /anonymous", "POST /mfa/challenge":
		f.issueLocked(w, "s"+randHex(8))
		return
	case "POST /signin", "POST /signin/code/verify", "POST /oauth/exchange":
		if f.mfa != "" {
			writeJSON(w, 200, map[string]any{"mfa_required": true, "mfa_token": "mfa-1", "methods": []string{f.mfa}})
			return
		}
		f.issueLocked(w, "s"+randHex(8))
		return
	case "POST /mfa/totp/enroll", "POST /mfa/totp/confirm":
		if sid != "" || str("mfa_token") != "mfa-1" {
			break // the bearer endpoints below
		}
		if path == "/mfa/totp/enroll" {
			writeJSON(w, 200, map[string]string{"secret": "JBSWY3DPEHPK3PXP", "otpauth_uri": "otpauth://totp/shop:ada?secret=JBSWY3DPEHPK3PXP", "qr_png": ""})
			return
		}
		rec := httptest.NewRecorder()
		f.issueLocked(rec, "s"+randHex(8))
		writeJSON(w, 200, map[string]any{"recovery_codes": []string{"aaaa-bbbb"}, "session": json.RawMessage(rec.Body.Bytes())})
		return
	}
	switch r.Method + " " + path {
	case "POST /refresh":
		rt := f.refresh[str("refresh_token")]
		switch {
		case rt == nil || f.revoked[rt.session]:
			writeErr(w, 401, "invalid_credentials")
		case rt.retired:
			f.revoked[rt.session] = true // reuse: the whole family goes
			writeErr(w, 401, "refresh_reused")
		default:
			rt.retired = true
			f.issueLocked(w, rt.session)
		}
	case "POST /signout":
		if rt := f.refresh[str("refresh_token")]; rt != nil {
			f.revoked[rt.session] = true
		} else if sid != "" {
			f.revoked[sid] = true
		}
		w.WriteHeader(204)
	case "GET /me":
		if needBearer() {
			writeJSON(w, 200, map[string]any{"id": fakeUserID, "email": "ada@example.com", "email_verified": true, "mfa": []string{"totp"}, "created_at": "2026-11-23T10:00:00Z"})
		}
	case "GET /sessions":
		if needBearer() {
			writeJSON(w, 200, map[string]any{"sessions": []map[string]any{{"id": sid, "created_at": "2026-11-23T10:00:00Z", "last_used_at": "2026-11-23T10:01:00Z", "user_agent": r.UserAgent(), "ip": "127.0.0.1", "current": true}}})
		}
	case "POST /upgrade":
		if needBearer() {
			writeJSON(w, 202, map[string]string{"status": "verification_sent"})
		}
	case "POST /mfa/totp/enroll":
		if needBearer() {
			writeJSON(w, 200, map[string]string{"secret": "JBSWY3DPEHPK3PXP", "otpauth_uri": "otpauth://totp/shop:ada?secret=JBSWY3DPEHPK3PXP", "qr_png": base64.StdEncoding.EncodeToString([]byte("\x89PNG"))})
		}
	case "POST /mfa/totp/confirm":
		if needBearer() {
			writeJSON(w, 200, map[string]any{"recovery_codes": []string{"aaaa-bbbb", "cccc-dddd"}})
		}
	case "POST /mfa/totp/disable":
		if needBearer() {
			w.WriteHeader(204)
		}
	default:
		if id, ok := strings.CutPrefix(path, "/sessions/"); ok && r.Method == http.MethodDelete {
			if needBearer() {
				f.revoked[id] = true
				w.WriteHeader(204)
			}
			return
		}
		writeErr(w, 404, "not_found")
	}
}
