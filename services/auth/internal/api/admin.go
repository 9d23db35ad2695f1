package api

import (
	"net/http"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// nameOK checks an app name against the API key syntax.
func nameOK(s string) bool {
	if s == "" || len(s) > token.MaxNameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

const maxLabelBytes = 200

func (a *API) createApp(r *http.Request) (int, any, *Error) {
	var req authapi.CreateApp
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if !nameOK(req.ID) {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "app id must be 1-%d characters of [A-Za-z0-9_-]", token.MaxNameBytes)
	}
	if len(req.Name) > maxLabelBytes {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "name is limited to %d bytes", maxLabelBytes)
	}
	app, err := a.cfg.Store.CreateApp(r.Context(), req.ID, req.Name)
	if err != nil {
		return 0, nil, a.storeError("create app", err)
	}
	a.log.Info("app created", "app", app.ID)
	return http.StatusCreated, app, nil
}

func (a *API) listApps(r *http.Request) (int, any, *Error) {
	apps, err := a.cfg.Store.ListApps(r.Context())
	if err != nil {
		return 0, nil, a.storeError("list apps", err)
	}
	if apps == nil {
		apps = []authapi.App{}
	}
	return http.StatusOK, authapi.Apps{Apps: apps}, nil
}

func (a *API) createKey(r *http.Request) (int, any, *Error) {
	app := r.PathValue("app")
	var req authapi.CreateKey
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if len(req.Name) > maxLabelBytes {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "name is limited to %d bytes", maxLabelBytes)
	}
	if len(req.Caps) == 0 {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"caps" is required: room pattern → operations, e.g. {"chat.*":["join","publish"]}`)
	}
	if err := req.Caps.Validate(); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%v", err)
	}
	k, err := a.cfg.Store.CreateKey(r.Context(), app, req.Name, req.Caps)
	if err != nil {
		return 0, nil, a.storeError("create key", err)
	}
	a.log.Info("key created", "app", k.App, "key", k.ID)
	a.cfg.Notify()
	return http.StatusCreated, k, nil
}

func (a *API) listKeys(r *http.Request) (int, any, *Error) {
	keys, err := a.cfg.Store.ListKeys(r.Context(), r.PathValue("app"))
	if err != nil {
		return 0, nil, a.storeError("list keys", err)
	}
	if keys == nil {
		keys = []authapi.Key{}
	}
	return http.StatusOK, authapi.Keys{Keys: keys}, nil
}

func (a *API) rotateKey(r *http.Request) (int, any, *Error) {
	var req authapi.RotateKey
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	var grace time.Duration
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"grace" must be a non-negative duration such as "1h"`)
		}
		grace = d
	}
	app, id := r.PathValue("app"), r.PathValue("key")
	k, err := a.cfg.Store.RotateKey(r.Context(), app, id, grace)
	if err != nil {
		return 0, nil, a.storeError("rotate key", err)
	}
	a.log.Info("key rotated", "app", app, "old_key", id, "new_key", k.ID, "grace", grace.String())
	a.cfg.Notify()
	return http.StatusCreated, k, nil
}

func (a *API) revokeKey(r *http.Request) (int, any, *Error) {
	app, id := r.PathValue("app"), r.PathValue("key")
	k, err := a.cfg.Store.RevokeKey(r.Context(), app, id)
	if err != nil {
		return 0, nil, a.storeError("revoke key", err)
	}
	a.log.Info("key revoked", "app", app, "key", id)
	a.cfg.Notify()
	return http.StatusOK, k, nil
}
