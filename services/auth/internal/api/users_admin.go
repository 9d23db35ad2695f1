package api

import (
	"net/http"
	"strconv"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Paging of GET /admin/v1/apps/{app}/users.
const (
	defaultUsersPage = 100
	maxUsersPage     = 1000
)

// mountUsersAdmin registers the admin endpoints of end-user accounts.
func (a *API) mountUsersAdmin(mux *http.ServeMux) {
	const p = "/admin/v1/apps/{app}"
	a.userRoute(mux, "PUT "+p+"/user-policy", a.adminUser(a.putUserPolicy))
	a.userRoute(mux, "GET "+p+"/user-policy", a.adminUser(a.getUserPolicy))
	a.userRoute(mux, "GET "+p+"/users", a.adminUser(a.listUsers))
	a.userRoute(mux, "GET "+p+"/users/{user}", a.adminUser(a.getUser))
	a.userRoute(mux, "POST "+p+"/users/{user}/block", a.adminUser(a.blockUser(true)))
	a.userRoute(mux, "POST "+p+"/users/{user}/unblock", a.adminUser(a.blockUser(false)))
}

// adminUser guards h with the admin credential.
func (a *API) adminUser(h userHandler) userHandler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
		return a.admin(func(r *http.Request) (int, any, *Error) { return h(w, r) })(r)
	}
}

func (a *API) putUserPolicy(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.UserPolicy
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	req.UpdatedAt = nil
	p, err := a.cfg.Accounts.PutPolicy(r.Context(), r.PathValue("app"), req)
	if err != nil {
		return 0, nil, a.userError(w, "put user policy", err)
	}
	a.log.Info("user policy set", "app", r.PathValue("app"), "key", p.Key, "signup", p.Signup, "anonymous", p.Anonymous)
	return http.StatusOK, p, nil
}

func (a *API) getUserPolicy(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	p, err := a.cfg.Accounts.GetPolicy(r.Context(), r.PathValue("app"))
	if err != nil {
		return 0, nil, a.userError(w, "user policy", err)
	}
	return http.StatusOK, p, nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	limit := defaultUsersPage
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxUsersPage {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"limit" must be 1-%d`, maxUsersPage)
		}
		limit = n
	}
	users, err := a.cfg.Accounts.ListUsers(r.Context(), r.PathValue("app"), r.URL.Query().Get("after"), limit)
	if err != nil {
		return 0, nil, a.userError(w, "list users", err)
	}
	return http.StatusOK, users, nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	u, err := a.cfg.Accounts.GetUser(r.Context(), r.PathValue("app"), r.PathValue("user"), a.cfg.Online)
	if err != nil {
		return 0, nil, a.userError(w, "get user", err)
	}
	return http.StatusOK, u, nil
}

func (a *API) blockUser(blocked bool) userHandler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
		app, id := r.PathValue("app"), r.PathValue("user")
		u, err := a.cfg.Accounts.SetBlocked(r.Context(), app, id, blocked)
		if err != nil {
			return 0, nil, a.userError(w, "block user", err)
		}
		a.log.Info("user block changed", "app", app, "user", id, "blocked", blocked)
		return http.StatusOK, u, nil
	}
}
