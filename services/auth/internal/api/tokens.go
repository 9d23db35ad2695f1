package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// issueToken answers POST /v1/tokens: a backend authenticated by its API
// key gets an EdDSA token for one of its users, never allowing more than
// the key does.
func (a *API) issueToken(r *http.Request) (int, any, *Error) {
	cred, ok := bearer(r)
	if !ok {
		return 0, nil, errUnauthorized
	}
	presented, err := token.ParseAPIKey(cred)
	if err != nil {
		return 0, nil, errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, "send the API key <app>.<keyId>:<secret> as the bearer credential")
	}
	key, err := a.cfg.Store.Authenticate(r.Context(), presented)
	if err != nil {
		if errors.Is(err, store.ErrBadKey) {
			a.log.Info("token request refused: invalid API key", "key", presented.ID, "secret_fp", token.Fingerprint(string(presented.Secret)))
		}
		return 0, nil, a.storeError("authenticate", err)
	}
	var req authapi.TokenRequest
	if aerr := decode(r, &req, false); aerr != nil {
		return 0, nil, aerr
	}
	ttl := a.cfg.TokenDefaultTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < time.Second || d > a.cfg.TokenMaxTTL {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"ttl" must be a duration from 1s to %s, e.g. "15m"`, a.cfg.TokenMaxTTL)
		}
		ttl = d
	}
	if err := req.Caps.Validate(); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%v", err)
	}
	if !req.Caps.Within(key.Caps) {
		a.log.Info("token request refused: capabilities exceed the key's", "app", key.App, "key", key.ID)
		return 0, nil, errorf(http.StatusForbidden, authapi.CodeCapabilityExceeded, "the requested capabilities exceed the API key's; a token may only narrow them")
	}
	sk, err := a.cfg.Store.ActiveSigningKey(r.Context())
	if err != nil {
		return 0, nil, a.storeError("signing key", err)
	}
	now := time.Now()
	tok, err := token.MintEdDSA(sk, token.Key{App: key.App, ID: key.ID}, req.ClientID, req.Caps, ttl, now)
	if err != nil {
		// The client id is the only input left unchecked.
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"client_id" must be 1-%d bytes of UTF-8 without control characters`, token.MaxClientIDBytes)
	}
	a.tokensIssued.Inc()
	a.log.Info("token issued", "app", key.App, "key", key.ID, "kid", sk.ID, "client", req.ClientID, "ttl", ttl.String(), "token_fp", token.Fingerprint(tok))
	return http.StatusOK, authapi.TokenResponse{Token: tok, ExpiresAt: now.Add(ttl).Truncate(time.Second).UTC(), KeyID: sk.ID}, nil
}

// jwks answers GET /.well-known/jwks.json: the public keys of every
// signing key whose tokens still verify.
func (a *API) jwks(r *http.Request) (int, any, *Error) {
	keys, err := a.cfg.Store.PublishedSigningKeys(r.Context())
	if err != nil {
		return 0, nil, a.storeError("jwks", err)
	}
	set := token.JWKS{Keys: make([]token.JWK, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, token.PublicJWK(k.ID, k.Public))
	}
	return http.StatusOK, set, nil
}

func (a *API) listSigningKeys(r *http.Request) (int, any, *Error) {
	keys, err := a.cfg.Store.PublishedSigningKeys(r.Context())
	if err != nil {
		return 0, nil, a.storeError("signing keys", err)
	}
	out := authapi.SigningKeys{Keys: make([]authapi.SigningKey, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, k.SigningKey)
	}
	return http.StatusOK, out, nil
}

func (a *API) rotateSigningKey(r *http.Request) (int, any, *Error) {
	var req authapi.RotateSigningKey
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	overlap := a.cfg.SigningKeyOverlap
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil || d < 0 {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, `"overlap" must be a non-negative duration such as "25h"`)
		}
		overlap = d
	}
	id, err := a.cfg.Store.RotateSigningKey(r.Context(), overlap)
	if err != nil {
		return 0, nil, a.storeError("rotate signing key", err)
	}
	a.log.Info("signing key rotated", "kid", id, "overlap", overlap.String())
	a.cfg.Notify()
	return a.listSigningKeys(r)
}
