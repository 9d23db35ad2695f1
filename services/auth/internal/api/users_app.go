package api

import (
	"errors"
	"net/http"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// mountUsersForApps registers the app's own view of its users: the same
// answers as the admin API (online status, last seen, blocked), for the
// app's backend, authenticated by one of the app's API keys with "admin"
// on "*" — the operator's admin credential is not the app's to hold.
func (a *API) mountUsersForApps(mux *http.ServeMux) {
	const p = "/v1/apps/{app}/users"
	a.userRoute(mux, "GET "+p, a.appKeyAdmin(a.listUsers))
	a.userRoute(mux, "GET "+p+"/{user}", a.appKeyAdmin(a.getUser))
	a.userRoute(mux, "POST "+p+"/{user}/block", a.appKeyAdmin(a.blockUser(true)))
	a.userRoute(mux, "POST "+p+"/{user}/unblock", a.appKeyAdmin(a.blockUser(false)))
}

// appKeyAdmin guards h with an API key of the path's app that allows
// "admin" on "*".
func (a *API) appKeyAdmin(h userHandler) userHandler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
		cred, ok := bearer(r)
		if !ok {
			return 0, nil, errUnauthorized
		}
		presented, err := token.ParseAPIKey(cred)
		if err != nil {
			return 0, nil, errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, "send an API key <app>.<keyId>:<secret> of the app as the bearer credential")
		}
		key, err := a.cfg.Store.Authenticate(r.Context(), presented)
		if err != nil {
			if errors.Is(err, store.ErrBadKey) {
				a.log.Info("users request refused: invalid API key", "key", presented.ID, "secret_fp", token.Fingerprint(string(presented.Secret)))
			}
			return 0, nil, a.storeError("authenticate", err)
		}
		if key.App != r.PathValue("app") {
			return 0, nil, errorf(http.StatusForbidden, protocol.CodeForbidden, "the API key belongs to another app")
		}
		if !key.Caps.Allows("*", token.OpAdmin) {
			return 0, nil, errorf(http.StatusForbidden, protocol.CodeForbidden, `reading and blocking users needs an API key with "admin" on "*"`)
		}
		return h(w, r)
	}
}
