package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	validationerrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/pkg/webhooks"
	"github.com/roomcast/roomcast/services/auth/authtest"
)

const webhooksSpecPath = "../../docs/webhooks-openapi.yaml"

// webhooksOpenAPI loads docs/webhooks-openapi.yaml, checks the document
// itself and returns a validator (with format assertions, so date-time
// fields are checked too) and the model.
func webhooksOpenAPI(t *testing.T) (validator.Validator, libopenapi.Document) {
	t.Helper()
	return loadSpec(t, webhooksSpecPath, config.WithFormatAssertions())
}

// specOperations lists "METHOD /path status" for every response the
// document declares.
func specOperations(t *testing.T, doc libopenapi.Document) map[string]bool {
	t.Helper()
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for path, item := range m.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			for status := range op.Responses.Codes.FromOldest() {
				out[strings.ToUpper(method)+" "+path+" "+status] = true
			}
		}
	}
	return out
}

// specErrorCodes returns the enum of the Error schema's error.code.
func specErrorCodes(t *testing.T, doc libopenapi.Document) []string {
	t.Helper()
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	errSchema := m.Model.Components.Schemas.GetOrZero("Error")
	if errSchema == nil {
		t.Fatal("webhooks-openapi.yaml has no Error schema")
	}
	inner := errSchema.Schema().Properties.GetOrZero("error")
	if inner == nil {
		t.Fatal("Error schema has no error property")
	}
	code := inner.Schema().Properties.GetOrZero("code")
	if code == nil {
		t.Fatal("Error schema has no error.code")
	}
	var out []string
	for _, n := range code.Schema().Enum {
		out = append(out, n.Value)
	}
	return out
}

// Whether the request itself must match the document: the error cases
// send requests the document forbids (and says so) or that only the
// service can refuse (an unknown id, a revoked key, a range the schema
// cannot express).
type reqCheck int

const (
	reqValid   reqCheck = iota // the document accepts the request
	reqInvalid                 // the document refuses it too
	reqAny                     // only the server can tell
)

// webhooksSpecRun sends real requests to a webhooks service and checks
// each request and answer against the document.
type webhooksSpecRun struct {
	t     *testing.T
	v     validator.Validator
	seen  map[string]bool // "METHOD /template status"
	codes map[string]bool // error codes answered
}

// do sends method base+tmpl (with {id} replaced by id, and query) with key
// (none if "") and the raw JSON body (none if ""), wants status and
// returns the answer's body.
func (s *webhooksSpecRun) do(base, method, tmpl, id, query, key, body string, check reqCheck, status int) []byte {
	t := s.t
	t.Helper()
	u := base + strings.ReplaceAll(tmpl, "{id}", url.PathEscape(id))
	if query != "" {
		u += "?" + query
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, u, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return req
	}
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	what := fmt.Sprintf("%s %s %s", method, tmpl, strings.TrimSpace(body))
	if resp.StatusCode != status {
		t.Errorf("%s: %d %s, want %d", what, resp.StatusCode, raw, status)
	}
	s.seen[fmt.Sprintf("%s %s %d", method, tmpl, resp.StatusCode)] = true
	if resp.StatusCode >= 400 {
		var e webhooks.Error
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Errorf("%s: error body %q: %v", what, raw, err)
		}
		s.codes[string(e.Error.Code)] = true
	}
	switch ok, errs := s.v.ValidateHttpRequest(newReq()); {
	case check == reqValid && !ok:
		for _, e := range errs {
			t.Errorf("%s: the request does not match %s: %s (%s)%s", what, webhooksSpecPath, e.Message, e.Reason, schemaFailures(e))
		}
	case check == reqInvalid && ok:
		t.Errorf("%s: %s accepts a request the service refuses with %d", what, webhooksSpecPath, resp.StatusCode)
	}
	s.checkResponse(what, newReq(), resp.StatusCode, resp.Header, raw, true)
	return raw
}

// checkResponse validates an answer and reports whether the document
// accepts it; with report, a refusal fails the test.
func (s *webhooksSpecRun) checkResponse(what string, req *http.Request, status int, h http.Header, body []byte, report bool) bool {
	s.t.Helper()
	resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	ok, errs := s.v.ValidateHttpResponse(req, resp)
	if !ok && report {
		for _, e := range errs {
			s.t.Errorf("%s → %d does not match %s: %s (%s)%s\n%s", what, status, webhooksSpecPath, e.Message, e.Reason, schemaFailures(e), body)
		}
	}
	return ok
}

// schemaFailures lists where a body broke its schema, and why.
func schemaFailures(e *validationerrors.ValidationError) string {
	var b strings.Builder
	for _, f := range e.SchemaValidationErrors {
		fmt.Fprintf(&b, "\n\t%s: %s", f.FieldPath, f.Reason)
	}
	return b.String()
}

// authKey creates app (if needed) on the auth service and a key of it
// bounded by caps, through the admin API.
func authKey(t *testing.T, e *authEnv, app string, caps token.Capabilities) token.Key {
	t.Helper()
	e.admin(t, "POST", "/admin/v1/apps", authapi.CreateApp{ID: app, Name: app}) // 409 when it exists
	b, _ := json.Marshal(authapi.CreateKey{Caps: caps})
	req, _ := http.NewRequest("POST", e.auth.HTTPURL()+"/admin/v1/apps/"+app+"/keys", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var k authapi.Key
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %d %v", resp.StatusCode, err)
	}
	key, err := token.ParseAPIKey(k.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	e.remember(string(key.Secret), key.String())
	return key
}

// TestWebhooksOpenAPIMatchesTheService calls every route of the webhooks
// management API on a real webhooks service (real PostgreSQL and Redis,
// keys from ROOMCAST_KEYS and from a real auth service) — successes and
// every error it documents, 503 last, after the service's database is
// gone — and checks each request and answer against
// docs/webhooks-openapi.yaml. Every response the document declares must
// have been seen, and every error code of its enum answered, but
// `internal`, which only a bug would send.
func TestWebhooksOpenAPIMatchesTheService(t *testing.T) {
	v, doc := webhooksOpenAPI(t)
	e := newAuthEnv(t, 0)
	db := authtest.Database(t)
	auth := []string{"ROOMCAST_AUTH_URL=" + e.auth.HTTPURL(), "ROOMCAST_SERVICE_TOKEN=" + e.serviceToken}
	hooks := e.Webhooks(t, "wh-spec", db, append([]string{"WEBHOOKS_ALLOW_PRIVATE=true", "WEBHOOKS_DISPATCH_INTERVAL=50ms",
		"WEBHOOKS_RETRY_MIN=50ms", "WEBHOOKS_RETRY_MAX=200ms", "WEBHOOKS_RETRY_HORIZON=1s", "WEBHOOKS_TIMEOUT=1m"}, auth...)...)
	// Private addresses refused (url_not_allowed); its own database and
	// Redis prefix, or it would take the events of the endpoints above
	// and its dialer refuse their loopback receivers.
	strict := e.Webhooks(t, "wh-spec-strict", authtest.Database(t), append([]string{"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix + "strict:"}, auth...)...)
	gw := e.Gateway(t, "gw-wh-spec", "GATEWAY_EVENT_CONSUMERS=webhooks")
	sdk, err := rest.New(rest.Config{GatewayURL: gw.HTTPURL(), APIKey: e.Key.String()})
	if err != nil {
		t.Fatal(err)
	}
	wh := sdk.Webhooks(hooks.HTTPURL())
	ctx := context.Background()

	key := e.Key.String() // static: every capability
	roomKey := authKey(t, e, e.Key.App, token.Capabilities{"chat.*": {token.OpJoin, token.OpAdmin}}).String()
	adminKey := authKey(t, e, e.Key.App, token.Capabilities{"*": {token.OpAdmin}}).String()
	otherApp := authKey(t, e, "spec-other", token.Capabilities{"*": {token.OpAdmin}}).String()
	badKey := e.Key.App + "." + e.Key.ID + ":not-the-secret-not-the-secret"

	// Three receivers: one answers 200 (delivered), one 500 (dead after
	// the 1s horizon), one holds its requests until the test ends
	// (pending, with a next_attempt).
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(ok.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for the test", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	release, held := make(chan struct{}), make(chan struct{}, 16)
	holding := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case held <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(holding.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // runs before holding.Close

	s := &webhooksSpecRun{t: t, v: v, seen: map[string]bool{}, codes: map[string]bool{}}
	base, strictBase := hooks.HTTPURL(), strict.HTTPURL()
	const (
		eps   = "/v1/webhooks/endpoints"
		ep    = eps + "/{id}"
		rot   = ep + "/rotate-secret"
		dels  = ep + "/deliveries"
		repl  = ep + "/replay"
		unkID = "ep_aaaaaaaaaaaaaaaaaaaaaaaa"
	)
	create := func(body string) webhooks.Endpoint {
		t.Helper()
		var out webhooks.Endpoint
		if err := json.Unmarshal(s.do(base, "POST", eps, "", "", key, body, reqValid, 201), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	okEp := create(fmt.Sprintf(`{"url":%q,"types":["message.published","message.published"],"description":"spec",
		"headers":{"X-Team":"rooms"},"batch_size":0}`, ok.URL))
	deadEp := create(fmt.Sprintf(`{"url":%q,"types":["message.published"],"enabled":true,"batch_size":2}`, failing.URL))
	heldEp := create(fmt.Sprintf(`{"url":%q,"types":["message.published"]}`, holding.URL))
	tmp := create(fmt.Sprintf(`{"url":%q}`, ok.URL+"/tmp")) // default types, no description
	if len(tmp.Types) != len(webhooks.DefaultTypes) || okEp.BatchSize != 1 || len(okEp.Types) != 1 {
		t.Errorf("defaults: types %v, batch_size %d, deduplicated types %v", tmp.Types, okEp.BatchSize, okEp.Types)
	}
	s.do(base, "POST", eps, "", "", adminKey, fmt.Sprintf(`{"url":%q,"enabled":false}`, ok.URL+"/off"), reqValid, 201)

	// Create: every refusal.
	s.do(base, "POST", eps, "", "", "", fmt.Sprintf(`{"url":%q}`, ok.URL), reqInvalid, 401)
	s.do(base, "POST", eps, "", "", badKey, fmt.Sprintf(`{"url":%q}`, ok.URL), reqAny, 401)
	s.do(base, "POST", eps, "", "", roomKey, fmt.Sprintf(`{"url":%q}`, ok.URL), reqValid, 403)
	s.do(base, "POST", eps, "", "", key, `{"url":`, reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"secret":"whsec_AAAA"}`, ok.URL), reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"batch_size":101}`, ok.URL), reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"description":%q}`, ok.URL, strings.Repeat("d", 501)), reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"headers":{"Webhook-Signature":"v1,x"}}`, ok.URL), reqAny, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q} {}`, ok.URL), reqAny, 400)
	// Names and values net/http would refuse to send.
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"headers":{"X(Team)":"a"}}`, ok.URL), reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"headers":{"X-Team":"a\u0000b"}}`, ok.URL), reqInvalid, 400)
	s.do(base, "POST", eps, "", "", key, `{"url":"ftp://example.com/hook"}`, reqAny, 422)
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q,"types":["message.sent"]}`, ok.URL), reqInvalid, 422)
	s.do(strictBase, "POST", eps, "", "", key, `{"url":"http://169.254.169.254/latest/meta-data/"}`, reqValid, 422)

	// List, get: the other app sees none of them.
	var list webhooks.Endpoints
	if err := json.Unmarshal(s.do(base, "GET", eps, "", "", key, "", reqValid, 200), &list); err != nil || len(list.Endpoints) != 5 {
		t.Errorf("list: %d endpoints (%v), want 5", len(list.Endpoints), err)
	}
	if err := json.Unmarshal(s.do(base, "GET", eps, "", "", otherApp, "", reqValid, 200), &list); err != nil || len(list.Endpoints) != 0 {
		t.Errorf("list as another app: %d endpoints (%v), want none", len(list.Endpoints), err)
	}
	s.do(base, "GET", eps, "", "", "", "", reqInvalid, 401)
	s.do(base, "GET", eps, "", "", roomKey, "", reqValid, 403)
	s.do(base, "GET", ep, okEp.ID, "", key, "", reqValid, 200)
	s.do(base, "GET", ep, okEp.ID, "", otherApp, "", reqValid, 404)
	s.do(base, "GET", ep, unkID, "", key, "", reqValid, 404)
	s.do(base, "GET", ep, okEp.ID, "", "", "", reqInvalid, 401)
	s.do(base, "GET", ep, okEp.ID, "", roomKey, "", reqValid, 403)

	// Update.
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{"description":"renamed","types":[],"headers":{"X-A":"1"},"enabled":false,"batch_size":5}`, reqValid, 200)
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{}`, reqValid, 200)
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{"id":"ep_x"}`, reqInvalid, 400)
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{"batch_size":-1}`, reqInvalid, 400)
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{"url":"not a url"}`, reqAny, 422)
	s.do(base, "PATCH", ep, tmp.ID, "", key, `{"types":["nope"]}`, reqInvalid, 422)
	s.do(base, "PATCH", ep, tmp.ID, "", otherApp, `{"enabled":true}`, reqValid, 404)
	s.do(base, "PATCH", ep, unkID, "", key, `{"enabled":true}`, reqValid, 404)
	s.do(base, "PATCH", ep, tmp.ID, "", "", `{}`, reqInvalid, 401)
	s.do(base, "PATCH", ep, tmp.ID, "", roomKey, `{}`, reqValid, 403)

	// Rotate.
	var rotated webhooks.Endpoint
	if err := json.Unmarshal(s.do(base, "POST", rot, tmp.ID, "", key, `{"overlap":"1h"}`, reqValid, 200), &rotated); err != nil || rotated.Secret == "" || rotated.Secret == tmp.Secret {
		t.Errorf("rotate: secret %v (%v), want a new one", rotated.Secret != "", err)
	}
	s.do(base, "POST", rot, tmp.ID, "", key, "", reqValid, 200)
	s.do(base, "POST", rot, tmp.ID, "", key, `{"overlap":"0s"}`, reqValid, 200)
	s.do(base, "POST", rot, tmp.ID, "", key, `{"overlap":"forever"}`, reqAny, 400)
	s.do(base, "POST", rot, tmp.ID, "", key, `{"overlap":"721h"}`, reqAny, 400)
	s.do(base, "POST", rot, tmp.ID, "", key, `{"grace":"1h"}`, reqInvalid, 400)
	s.do(base, "POST", rot, tmp.ID, "", otherApp, "", reqValid, 404)
	s.do(base, "POST", rot, unkID, "", key, "", reqValid, 404)
	s.do(base, "POST", rot, tmp.ID, "", "", "", reqInvalid, 401)
	s.do(base, "POST", rot, tmp.ID, "", roomKey, "", reqValid, 403)

	// Delete.
	s.do(base, "DELETE", ep, tmp.ID, "", otherApp, "", reqValid, 404)
	s.do(base, "DELETE", ep, tmp.ID, "", "", "", reqInvalid, 401)
	s.do(base, "DELETE", ep, tmp.ID, "", roomKey, "", reqValid, 403)
	s.do(base, "DELETE", ep, tmp.ID, "", key, "", reqValid, 204)
	s.do(base, "DELETE", ep, tmp.ID, "", key, "", reqValid, 404)

	// Two messages give each endpoint two deliveries: delivered, dead
	// (after the horizon), pending (held).
	for i := range 2 {
		if _, err := sdk.Publish(ctx, rest.Message{Room: "spec", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(id, state string) int {
		l, err := wh.Deliveries(ctx, id, state, "", 10)
		if err != nil {
			return -1
		}
		return len(l.Deliveries)
	}
	testenv.WaitFor(t, 30*time.Second, "two delivered", func() bool { return count(okEp.ID, webhooks.StateDelivered) == 2 })
	testenv.WaitFor(t, 30*time.Second, "two dead", func() bool { return count(deadEp.ID, webhooks.StateDead) == 2 })
	testenv.WaitFor(t, 30*time.Second, "a held request", func() bool { return len(held) > 0 })

	// Deliveries.
	var page webhooks.Deliveries
	if err := json.Unmarshal(s.do(base, "GET", dels, deadEp.ID, "state=dead&limit=1", key, "", reqValid, 200), &page); err != nil ||
		len(page.Deliveries) != 1 || page.Next == "" || len(page.Deliveries[0].Log) < 2 {
		t.Fatalf("first page of dead deliveries: %+v (%v), want one with its attempts and a next cursor", page, err)
	}
	deadID := page.Deliveries[0].ID
	s.do(base, "GET", dels, deadEp.ID, "limit=1&cursor="+page.Next, key, "", reqValid, 200)
	if err := json.Unmarshal(s.do(base, "GET", dels, okEp.ID, "state=delivered", key, "", reqValid, 200), &page); err != nil || len(page.Deliveries) != 2 {
		t.Fatalf("delivered: %+v (%v)", page, err)
	}
	deliveredID := page.Deliveries[0].ID
	if err := json.Unmarshal(s.do(base, "GET", dels, heldEp.ID, "", key, "", reqValid, 200), &page); err != nil ||
		len(page.Deliveries) != 2 || page.Deliveries[0].State != webhooks.StatePending || page.Deliveries[0].NextAttempt == nil {
		t.Fatalf("held: %+v (%v), want two pending with their next attempt", page, err)
	}
	s.do(base, "GET", dels, okEp.ID, "state=lost", key, "", reqInvalid, 400)
	s.do(base, "GET", dels, okEp.ID, "limit=0", key, "", reqInvalid, 400)
	s.do(base, "GET", dels, okEp.ID, "limit=501", key, "", reqInvalid, 400)
	s.do(base, "GET", dels, okEp.ID, "cursor=abc", key, "", reqInvalid, 400)
	s.do(base, "GET", dels, okEp.ID, "", otherApp, "", reqValid, 404)
	s.do(base, "GET", dels, unkID, "", key, "", reqValid, 404)
	s.do(base, "GET", dels, okEp.ID, "", "", "", reqInvalid, 401)
	s.do(base, "GET", dels, okEp.ID, "", roomKey, "", reqValid, 403)

	// Replay: named (a delivered one), every dead one, refusals.
	var replayed webhooks.Replayed
	if err := json.Unmarshal(s.do(base, "POST", repl, okEp.ID, "", key, fmt.Sprintf(`{"delivery_ids":[%q]}`, deliveredID), reqValid, 200), &replayed); err != nil || replayed.Replayed != 1 {
		t.Errorf("replay of a delivered delivery: %+v (%v), want 1", replayed, err)
	}
	if err := json.Unmarshal(s.do(base, "POST", repl, deadEp.ID, "", key, "", reqValid, 200), &replayed); err != nil || replayed.Replayed != 2 {
		t.Errorf("replay of every dead delivery: %+v (%v), want 2", replayed, err)
	}
	s.do(base, "POST", repl, deadEp.ID, "", key, fmt.Sprintf(`{"delivery_ids":[%q]}`, deadID+"0"), reqValid, 200) // not this endpoint's: none
	s.do(base, "POST", repl, deadEp.ID, "", key, `{"delivery_ids":["x"]}`, reqInvalid, 400)
	s.do(base, "POST", repl, deadEp.ID, "", key, `{"delivery_ids":[1]}`, reqInvalid, 400)
	s.do(base, "POST", repl, deadEp.ID, "", otherApp, "", reqValid, 404)
	s.do(base, "POST", repl, unkID, "", key, "", reqValid, 404)
	s.do(base, "POST", repl, deadEp.ID, "", "", "", reqInvalid, 401)
	s.do(base, "POST", repl, deadEp.ID, "", roomKey, "", reqValid, 403)

	// The check is not vacuous: answers the service must never give fail.
	getReq := func(tmpl, id string) *http.Request {
		r, _ := http.NewRequest("GET", base+strings.ReplaceAll(tmpl, "{id}", id), nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return r
	}
	jsonH := http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
	okBody, _ := json.Marshal(okEp) // as created: with its secret
	noSecret := okEp
	noSecret.Secret = ""
	plain, _ := json.Marshal(noSecret)
	for _, c := range []struct {
		what   string
		req    *http.Request
		status int
		h      http.Header
		body   string
	}{
		{"an endpoint read back with its secret", getReq(ep, okEp.ID), 200, jsonH, string(okBody)},
		{"an error code outside the enum", getReq(ep, okEp.ID), 404, jsonH, `{"error":{"code":"gone","message":"x"}}`},
		{"an error without its message", getReq(ep, okEp.ID), 404, jsonH, `{"error":{"code":"not_found"}}`},
		{"an undocumented status", getReq(ep, okEp.ID), 409, jsonH, `{"error":{"code":"bad_request","message":"x"}}`},
		{"an endpoint without the no-store header", getReq(ep, okEp.ID), 200, http.Header{"Content-Type": {"application/json"}}, string(plain)},
		{"an endpoint with an unknown type", getReq(ep, okEp.ID), 200, jsonH, strings.Replace(string(plain), `"message.published"`, `"message.sent"`, 1)},
		{"an endpoint with a bad timestamp", getReq(ep, okEp.ID), 200, jsonH, strings.Replace(string(plain), `"created_at":"`, `"created_at":"yesterday`, 1)},
		{"a delivery in an unknown state", getReq(dels, okEp.ID), 200, jsonH, `{"deliveries":[{"id":"1","event_id":"evt_a","event_type":"room.occupied","state":"lost","attempts":0,"created_at":"2026-01-01T00:00:00Z","log":[]}]}`},
		{"an attempt with status 42", getReq(dels, okEp.ID), 200, jsonH, `{"deliveries":[{"id":"1","event_id":"evt_a","event_type":"room.occupied","state":"dead","attempts":1,"created_at":"2026-01-01T00:00:00Z","log":[{"n":1,"at":"2026-01-01T00:00:00Z","status":42,"latency_ms":1}]}]}`},
	} {
		if s.checkResponse(c.what, c.req, c.status, c.h, []byte(c.body), false) {
			t.Errorf("%s passes validation against %s", c.what, webhooksSpecPath)
		}
	}
	// A create answer without the secret fails too.
	cr, _ := http.NewRequest("POST", base+eps, strings.NewReader(`{"url":"http://x/"}`))
	cr.Header.Set("Content-Type", "application/json")
	cr.Header.Set("Authorization", "Bearer "+key)
	if s.checkResponse("create without secret", cr, 201, jsonH, plain, false) {
		t.Errorf("a create answer without the secret passes validation against %s", webhooksSpecPath)
	}

	// 503: the service's database is gone; every route answers
	// unavailable.
	once.Do(func() { close(release) })
	dropDatabase(t, db)
	testenv.WaitFor(t, 30*time.Second, "the service sees its database gone", func() bool {
		_, err := wh.Endpoints(ctx)
		return isCode(err, "unavailable")
	})
	s.do(base, "POST", eps, "", "", key, fmt.Sprintf(`{"url":%q}`, ok.URL), reqValid, 503)
	s.do(base, "GET", eps, "", "", key, "", reqValid, 503)
	s.do(base, "GET", ep, okEp.ID, "", key, "", reqValid, 503)
	s.do(base, "PATCH", ep, okEp.ID, "", key, `{}`, reqValid, 503)
	s.do(base, "DELETE", ep, okEp.ID, "", key, "", reqValid, 503)
	s.do(base, "POST", rot, okEp.ID, "", key, "", reqValid, 503)
	s.do(base, "GET", dels, okEp.ID, "", key, "", reqValid, 503)
	s.do(base, "POST", repl, okEp.ID, "", key, "", reqValid, 503)

	// Every response the document declares was seen, and nothing else.
	declared := specOperations(t, doc)
	var missing []string
	for op := range declared {
		if !s.seen[op] {
			missing = append(missing, op)
		}
	}
	for op := range s.seen {
		if !declared[op] {
			t.Errorf("answer %s is not in %s", op, webhooksSpecPath)
		}
	}
	sort.Strings(missing)
	for _, op := range missing {
		t.Errorf("%s declares %s, which the test never saw", webhooksSpecPath, op)
	}
	// Every code of the enum but internal was answered.
	for _, c := range specErrorCodes(t, doc) {
		if !s.codes[c] && c != "internal" {
			t.Errorf("error code %s of %s never answered", c, webhooksSpecPath)
		}
	}
}

// dropDatabase drops the test's database under a running service (its
// connections are closed), so that the service answers unavailable.
func dropDatabase(t *testing.T, dbURL string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
}

// TestWebhooksOpenAPIErrorCodesMatchTheCode keeps the error-code enum of
// docs/webhooks-openapi.yaml equal to pkg/webhooks.Codes, the one list of
// the codes the service answers with.
func TestWebhooksOpenAPIErrorCodesMatchTheCode(t *testing.T) {
	_, doc := webhooksOpenAPI(t)
	inSpec := map[string]bool{}
	for _, c := range specErrorCodes(t, doc) {
		if inSpec[c] {
			t.Errorf("%s lists %s twice", webhooksSpecPath, c)
		}
		inSpec[c] = true
	}
	for _, c := range webhooks.Codes {
		if !inSpec[string(c)] {
			t.Errorf("%s error enum lacks %s (pkg/webhooks.Codes)", webhooksSpecPath, c)
		}
		delete(inSpec, string(c))
	}
	for c := range inSpec {
		t.Errorf("%s lists %s, which is not in pkg/webhooks.Codes", webhooksSpecPath, c)
	}
}
