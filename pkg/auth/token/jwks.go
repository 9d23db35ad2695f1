package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
)

// JWK is a JSON Web Key (RFC 7517) for an Ed25519 public key (RFC 8037:
// kty "OKP", crv "Ed25519", x the raw public key in base64url).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKS is a JSON Web Key Set, as served at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK describes an Ed25519 signing key's public half.
func PublicJWK(id string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: id, Alg: "EdDSA", Use: "sig"}
}

// SigningKeys returns the set's Ed25519 signature keys as Keys (App empty,
// Public set) for a keyring. Keys of other types or uses are skipped, so a
// set may carry keys this version does not understand; a malformed Ed25519
// key is an error.
func (s JWKS) SigningKeys() ([]Key, error) {
	var out []Key
	for _, k := range s.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		if !validName(k.Kid) {
			return nil, fmt.Errorf("jwks: key id %q is not valid", truncate(k.Kid, MaxNameBytes))
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwks: key %s: x is not a base64url Ed25519 public key", k.Kid)
		}
		out = append(out, Key{ID: k.Kid, Public: ed25519.PublicKey(x)})
	}
	return out, nil
}
