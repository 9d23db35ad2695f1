package api

import (
	"net/http"
	"strconv"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/seal"
)

// service guards h with the service credential (constant-time comparison).
func (a *API) service(h handler) handler {
	return func(r *http.Request) (int, any, *Error) {
		cred, ok := bearer(r)
		if !ok || a.cfg.ServiceToken == "" || !seal.EqualStrings(cred, a.cfg.ServiceToken) {
			return 0, nil, errUnauthorized
		}
		return h(r)
	}
}

// etag is the entity tag of a key-set version.
func etag(version int64) string { return `"v` + strconv.FormatInt(version, 10) + `"` }

// internalKeys answers the gateways' GET /internal/v1/keys. Gateways poll
// it with If-None-Match: while no key changed the answer is a bodiless 304
// read from one index, so polling every few seconds costs little.
func (a *API) internalKeys(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	v, err := a.cfg.Store.KeyVersion(r.Context())
	if err != nil {
		return 0, nil, a.storeError("key version", err)
	}
	if r.Header.Get("If-None-Match") == etag(v) {
		w.Header().Set("ETag", etag(v))
		return http.StatusNotModified, nil, nil
	}
	set, err := a.cfg.Store.KeySet(r.Context())
	if err != nil {
		return 0, nil, a.storeError("key set", err)
	}
	if set.Keys == nil {
		set.Keys = []authapi.InternalKey{}
	}
	w.Header().Set("ETag", etag(set.Version))
	return http.StatusOK, set, nil
}
