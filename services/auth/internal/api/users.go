package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/accounts"
	"github.com/roomcast/roomcast/services/auth/internal/oauthlogin"
)

// userHandler is a handler that may set headers (Retry-After).
type userHandler func(w http.ResponseWriter, r *http.Request) (int, any, *Error)

// mountUsers registers the end-user endpoints (docs/users-api.md), if
// the service runs with accounts.
func (a *API) mountUsers(mux *http.ServeMux) {
	if a.cfg.Accounts == nil {
		return
	}
	const p = "/v1/apps/{app}/auth"
	a.userRoute(mux, "POST "+p+"/signup", a.signup)
	a.userRoute(mux, "POST "+p+"/verify", a.verify)
	a.userRoute(mux, "POST "+p+"/verify/resend", a.resend)
	a.userRoute(mux, "POST "+p+"/signin", a.signin)
	a.userRoute(mux, "POST "+p+"/signin/code", a.signinCode)
	a.userRoute(mux, "POST "+p+"/signin/code/verify", a.signinCodeVerify)
	a.userRoute(mux, "POST "+p+"/mfa/challenge", a.mfaChallenge)
	a.userRoute(mux, "POST "+p+"/password/reset", a.passwordReset)
	a.userRoute(mux, "POST "+p+"/password/reset/confirm", a.passwordResetConfirm)
	a.userRoute(mux, "POST "+p+"/anonymous", a.anonymous)
	a.userRoute(mux, "POST "+p+"/upgrade", a.bearerUser(a.upgrade))
	a.userRoute(mux, "POST "+p+"/refresh", a.refresh)
	a.userRoute(mux, "POST "+p+"/signout", a.signout)
	a.userRoute(mux, "GET "+p+"/me", a.bearerUser(a.me))
	a.userRoute(mux, "GET "+p+"/sessions", a.bearerUser(a.sessions))
	a.userRoute(mux, "DELETE "+p+"/sessions/{id}", a.bearerUser(a.revokeSession))
	a.userRoute(mux, "POST "+p+"/mfa/totp/enroll", a.totpEnroll)
	a.userRoute(mux, "POST "+p+"/mfa/totp/confirm", a.totpConfirm)
	a.userRoute(mux, "POST "+p+"/mfa/totp/disable", a.bearerUser(a.totpDisable))
	if a.cfg.OAuth != nil {
		a.userRoute(mux, "POST "+p+"/oauth/exchange", a.oauthExchange)
	}
	a.mountUsersAdmin(mux)
	a.mountUsersForApps(mux)
}

func (a *API) userRoute(mux *http.ServeMux, pattern string, h userHandler) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, pattern, func(r *http.Request) (int, any, *Error) { return h(w, r) })
	})
}

// client is who asks: the IP the limits count and the user agent
// recorded on sessions.
func (a *API) client(r *http.Request) accounts.Client {
	return accounts.Client{IP: a.cfg.TrustedProxies.Of(r), UserAgent: r.UserAgent()}
}

// userError maps an accounts error to its API answer.
func (a *API) userError(w http.ResponseWriter, op string, err error) *Error {
	if le, ok := abuse.IsLimited(err); ok {
		secs := int(math.Ceil(le.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return errorf(http.StatusTooManyRequests, authapi.CodeRateLimited, "too many attempts; retry after %d s", max(secs, 1))
	}
	switch {
	case errors.Is(err, accounts.ErrNoPolicy):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such app, or it has no user policy")
	case errors.Is(err, accounts.ErrInvalidCredentials):
		return errorf(http.StatusUnauthorized, authapi.CodeInvalidCredentials, "invalid credentials")
	case errors.Is(err, accounts.ErrEmailNotVerified):
		return errorf(http.StatusForbidden, authapi.CodeEmailNotVerified, "the email is not verified yet; a new code was sent")
	case errors.Is(err, accounts.ErrRefreshReused):
		return errorf(http.StatusUnauthorized, authapi.CodeRefreshReused, "this refresh token was used already; the session is revoked")
	case errors.Is(err, accounts.ErrMFAInvalid):
		return errorf(http.StatusUnauthorized, authapi.CodeMFAInvalid, "invalid or expired second factor")
	case errors.Is(err, accounts.ErrWeakPassword):
		return errorf(http.StatusBadRequest, authapi.CodeWeakPassword, "the password must be 8-256 bytes")
	case errors.Is(err, accounts.ErrSignupDisabled):
		return errorf(http.StatusForbidden, authapi.CodeSignupDisabled, "the app does not allow this kind of sign-up")
	case errors.Is(err, accounts.ErrBadEmail):
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"email" is not a valid email address`)
	case errors.Is(err, accounts.ErrBadPolicy):
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%v", err)
	case errors.Is(err, accounts.ErrKeyUnavailable):
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "the app's user policy names an API key that is revoked, expired or too narrow")
	case errors.Is(err, accounts.ErrConflict):
		return errorf(http.StatusConflict, authapi.CodeConflict, "not possible in the user's current state")
	case errors.Is(err, accounts.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such user or session")
	}
	a.log.Error(op+" failed", "err", err)
	return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "temporarily unavailable; retry later")
}

func (a *API) accepted(w http.ResponseWriter, op, status string, err error) (int, any, *Error) {
	if err != nil {
		return 0, nil, a.userError(w, op, err)
	}
	return http.StatusAccepted, authapi.Accepted{Status: status}, nil
}

func (a *API) session(w http.ResponseWriter, op string, res accounts.Result, err error) (int, any, *Error) {
	if err != nil {
		return 0, nil, a.userError(w, op, err)
	}
	return http.StatusOK, res, nil
}

func (a *API) signup(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.Credentials
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	err := a.cfg.Accounts.SignUp(r.Context(), r.PathValue("app"), req.Email, req.Password, a.client(r))
	return a.accepted(w, "sign-up", authapi.StatusVerificationSent, err)
}

func (a *API) verify(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.CodeRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.Verify(r.Context(), r.PathValue("app"), req.Email, req.Code, a.client(r))
	return a.session(w, "verify", res, err)
}

func (a *API) resend(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.EmailRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	err := a.cfg.Accounts.Resend(r.Context(), r.PathValue("app"), req.Email, a.client(r))
	return a.accepted(w, "resend", authapi.StatusVerificationSent, err)
}

func (a *API) signin(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.Credentials
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.SignIn(r.Context(), r.PathValue("app"), req.Email, req.Password, a.client(r))
	return a.session(w, "sign-in", res, err)
}

func (a *API) signinCode(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.EmailRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	err := a.cfg.Accounts.SendSignInCode(r.Context(), r.PathValue("app"), req.Email, a.client(r))
	return a.accepted(w, "sign-in code", authapi.StatusSent, err)
}

func (a *API) signinCodeVerify(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.CodeRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.SignInWithCode(r.Context(), r.PathValue("app"), req.Email, req.Code, a.client(r))
	return a.session(w, "sign-in with code", res, err)
}

func (a *API) mfaChallenge(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.MFAChallenge
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.Challenge(r.Context(), r.PathValue("app"), req.MFAToken, req.Code, req.RecoveryCode, a.client(r))
	return a.session(w, "mfa challenge", res, err)
}

func (a *API) passwordReset(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.EmailRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	err := a.cfg.Accounts.ResetPassword(r.Context(), r.PathValue("app"), req.Email, a.client(r))
	return a.accepted(w, "password reset", authapi.StatusSent, err)
}

func (a *API) passwordResetConfirm(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.ResetConfirm
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.ConfirmReset(r.Context(), r.PathValue("app"), req.Email, req.Code, req.Password, a.client(r))
	return a.session(w, "password reset confirm", res, err)
}

func (a *API) anonymous(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	res, err := a.cfg.Accounts.Anonymous(r.Context(), r.PathValue("app"), a.client(r))
	return a.session(w, "anonymous", res, err)
}

func (a *API) refresh(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.RefreshRequest
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	res, err := a.cfg.Accounts.Refresh(r.Context(), r.PathValue("app"), req.RefreshToken, a.client(r))
	return a.session(w, "refresh", res, err)
}

// signout takes a bearer access token or a refresh token in the body.
func (a *API) signout(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	app := r.PathValue("app")
	var req authapi.RefreshRequest
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	var pr *accounts.Principal
	if cred, ok := bearer(r); ok && req.RefreshToken == "" {
		p, err := a.cfg.Accounts.Authenticate(r.Context(), app, cred)
		if err != nil {
			return 0, nil, a.userError(w, "sign-out", err)
		}
		pr = &p
	} else if req.RefreshToken == "" {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `send the access token as the bearer credential or {"refresh_token"}`)
	}
	if err := a.cfg.Accounts.SignOut(r.Context(), app, pr, req.RefreshToken, a.client(r)); err != nil {
		return 0, nil, a.userError(w, "sign-out", err)
	}
	return http.StatusNoContent, nil, nil
}

// bearerUser authenticates the user's access token before h.
func (a *API) bearerUser(h func(w http.ResponseWriter, r *http.Request, pr accounts.Principal) (int, any, *Error)) userHandler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
		cred, ok := bearer(r)
		if !ok {
			return 0, nil, errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, `send "Authorization: Bearer <access token>"`)
		}
		pr, err := a.cfg.Accounts.Authenticate(r.Context(), r.PathValue("app"), cred)
		if err != nil {
			return 0, nil, a.userError(w, "authenticate", err)
		}
		return h(w, r, pr)
	}
}

func (a *API) upgrade(w http.ResponseWriter, r *http.Request, pr accounts.Principal) (int, any, *Error) {
	var req authapi.Credentials
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	err := a.cfg.Accounts.Upgrade(r.Context(), pr, req.Email, req.Password, a.client(r))
	return a.accepted(w, "upgrade", authapi.StatusVerificationSent, err)
}

func (a *API) me(_ http.ResponseWriter, _ *http.Request, pr accounts.Principal) (int, any, *Error) {
	return http.StatusOK, a.cfg.Accounts.Me(pr), nil
}

func (a *API) sessions(w http.ResponseWriter, r *http.Request, pr accounts.Principal) (int, any, *Error) {
	list, err := a.cfg.Accounts.Sessions(r.Context(), pr)
	if err != nil {
		return 0, nil, a.userError(w, "sessions", err)
	}
	return http.StatusOK, authapi.Sessions{Sessions: list}, nil
}

func (a *API) revokeSession(w http.ResponseWriter, r *http.Request, pr accounts.Principal) (int, any, *Error) {
	if err := a.cfg.Accounts.RevokeSession(r.Context(), pr, r.PathValue("id")); err != nil {
		return 0, nil, a.userError(w, "revoke session", err)
	}
	return http.StatusNoContent, nil, nil
}

// principal authenticates a bearer access token or, without one, an
// mfa_token of a user who must enroll TOTP.
func (a *API) principal(w http.ResponseWriter, r *http.Request, mfaToken string) (accounts.Principal, *Error) {
	app := r.PathValue("app")
	var (
		pr  accounts.Principal
		err error
	)
	if cred, ok := bearer(r); ok {
		pr, err = a.cfg.Accounts.Authenticate(r.Context(), app, cred)
	} else if mfaToken != "" {
		pr, err = a.cfg.Accounts.MFAPrincipal(r.Context(), app, mfaToken)
	} else {
		return pr, errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, `send "Authorization: Bearer <access token>" or {"mfa_token"}`)
	}
	if err != nil {
		return pr, a.userError(w, "authenticate", err)
	}
	return pr, nil
}

func (a *API) totpEnroll(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.TOTPEnroll
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	pr, aerr := a.principal(w, r, req.MFAToken)
	if aerr != nil {
		return 0, nil, aerr
	}
	e, err := a.cfg.Accounts.EnrollTOTP(r.Context(), pr)
	if err != nil {
		return 0, nil, a.userError(w, "totp enroll", err)
	}
	return http.StatusOK, e, nil
}

func (a *API) totpConfirm(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.TOTPCode
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	pr, aerr := a.principal(w, r, req.MFAToken)
	if aerr != nil {
		return 0, nil, aerr
	}
	codes, err := a.cfg.Accounts.ConfirmTOTP(r.Context(), pr, req.Code, a.client(r))
	if err != nil {
		return 0, nil, a.userError(w, "totp confirm", err)
	}
	out := authapi.RecoveryCodes{RecoveryCodes: codes}
	if pr.SessionID == "" { // signed in by the mfa_token: finish the sign-in
		res, err := a.cfg.Accounts.FinishEnrollment(r.Context(), r.PathValue("app"), req.MFAToken, pr, a.client(r))
		if err != nil {
			return 0, nil, a.userError(w, "totp confirm", err)
		}
		out.Session = &res
	}
	return http.StatusOK, out, nil
}

func (a *API) totpDisable(w http.ResponseWriter, r *http.Request, pr accounts.Principal) (int, any, *Error) {
	var req authapi.TOTPCode
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if err := a.cfg.Accounts.DisableTOTP(r.Context(), pr, req.Code, a.client(r)); err != nil {
		return 0, nil, a.userError(w, "totp disable", err)
	}
	return http.StatusNoContent, nil, nil
}

// oauthExchange turns a login code from the OAuth callback into a
// session (or the MFA answer).
func (a *API) oauthExchange(w http.ResponseWriter, r *http.Request) (int, any, *Error) {
	var req authapi.OAuthExchange
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	app := r.PathValue("app")
	c := a.client(r)
	if err := a.cfg.Accounts.AllowCodeCheck(r.Context(), c); err != nil {
		return 0, nil, a.userError(w, "oauth exchange", err)
	}
	id, err := a.cfg.OAuth.Redeem(r.Context(), app, req.LoginCode)
	switch {
	case errors.Is(err, oauthlogin.ErrFailed):
		return 0, nil, errorf(http.StatusBadRequest, authapi.CodeOAuthFailed, "unknown, expired or used login code")
	case err != nil:
		return 0, nil, a.userError(w, "oauth exchange", err)
	}
	res, err := a.cfg.Accounts.OAuthSignIn(r.Context(), app, accounts.Identity{
		Provider: id.Provider, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified}, c)
	return a.session(w, "oauth exchange", res, err)
}
