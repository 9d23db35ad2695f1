package token

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of Verifier's zero-valued fields.
const (
	DefaultLeeway        = 5 * time.Second
	DefaultMaxTokenBytes = 8192
)

// algorithms lists the signing algorithms Verify accepts. Each entry returns
// the material that verifies the algorithm's signatures for a key, or an
// error if the key cannot verify that algorithm. The key, not the token,
// decides: an API key has only an HMAC secret and verifies only HS256; a
// signing key of the auth service has only an Ed25519 public key and
// verifies only EdDSA. So a token cannot pick an algorithm that turns one
// kind of key material into another (alg confusion).
var algorithms = map[string]func(Key) (any, error){
	jwt.SigningMethodHS256.Alg(): func(k Key) (any, error) {
		if len(k.Secret) < MinSecretBytes {
			return nil, errors.New("key has no usable HMAC secret")
		}
		return k.Secret, nil
	},
	jwt.SigningMethodEdDSA.Alg(): func(k Key) (any, error) {
		if len(k.Public) != ed25519.PublicKeySize {
			return nil, errors.New("key has no Ed25519 public key")
		}
		return k.Public, nil
	},
}

// validMethods is the sorted list of algorithms' names, for the parser.
var validMethods = func() []string {
	m := make([]string, 0, len(algorithms))
	for alg := range algorithms {
		m = append(m, alg)
	}
	sort.Strings(m)
	return m
}()

// Verifier verifies tokens. Its zero value (with Keys set) is ready to use;
// it is safe for concurrent use if its fields are not changed meanwhile.
type Verifier struct {
	// Keys finds the key named by a token's "kid" header. Required: with
	// no keyring every token fails with ErrUnknownKey.
	Keys Keyring
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	// Zero means DefaultLeeway (5s); a negative value means no leeway.
	Leeway time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// MaxTokenBytes caps the token's length; longer tokens are rejected
	// with ErrMalformed before any parsing. Zero or negative means
	// DefaultMaxTokenBytes (8192).
	MaxTokenBytes int
}

// Verify checks token and returns its claims. It accepts only the
// algorithms a key supports (HS256 for API keys: "none", other algorithms
// and alg confusion are rejected), requires a "kid" naming a known key, a
// valid signature, "sub", "exp" (not past), "nbf" and "iat" (if present) not
// in the future, an "app" claim equal to the key's app, and valid
// capabilities, all within Leeway. Errors wrap exactly one of the package's
// Err* sentinels; they never contain the token.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	limit := v.MaxTokenBytes
	if limit <= 0 {
		limit = DefaultMaxTokenBytes
	}
	if len(token) > limit {
		return nil, fmt.Errorf("%w: token is %d bytes, limit is %d", ErrMalformed, len(token), limit)
	}
	if v.Keys == nil {
		return nil, fmt.Errorf("%w: no keyring configured", ErrUnknownKey)
	}

	leeway := v.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(validMethods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}

	var (
		key    Key
		keyErr error // the keyfunc's own error, returned as is
	)
	keyfunc := func(t *jwt.Token) (any, error) {
		var material any
		key, material, keyErr = v.key(t)
		if keyErr != nil {
			return nil, keyErr
		}
		return material, nil
	}

	claims := new(Claims)
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, keyfunc)
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil && !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		return nil, classify(err)
	}

	// The signature is valid from here on: the claims are the key owner's.
	issuer, ierr := v.issuer(key, claims)
	if ierr != nil {
		return nil, ierr
	}
	if cerr := claims.check(issuer.App); cerr != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidClaims, cerr)
	}
	if !claims.Caps.Within(issuer.Caps) {
		return nil, fmt.Errorf("%w: key %q", ErrCapsExceeded, issuer.ID)
	}
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) &&
			!errors.Is(err, jwt.ErrTokenNotValidYet) &&
			!errors.Is(err, jwt.ErrTokenUsedBeforeIssued) &&
			!errors.Is(err, jwt.ErrTokenRequiredClaimMissing) &&
			!errors.Is(err, jwt.ErrInvalidType) {
			return nil, fmt.Errorf("%w: %w", ErrExpired, bounded{err})
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidClaims, bounded{err})
	}
	return claims, nil
}

// issuer is the API key a validly signed token was issued for: the
// signing key itself for HS256, the key named by "akid" for a token signed
// by an auth service key (App empty), which vouches for any app's keys.
func (v *Verifier) issuer(signer Key, claims *Claims) (Key, error) {
	if signer.App != "" {
		if claims.APIKey != "" && claims.APIKey != signer.ID {
			return Key{}, fmt.Errorf("%w: akid does not name the signing key", ErrInvalidClaims)
		}
		claims.APIKey = signer.ID
		return signer, nil
	}
	if claims.APIKey == "" {
		return Key{}, fmt.Errorf("%w: no akid claim", ErrInvalidClaims)
	}
	k, ok := v.Keys.Lookup(claims.APIKey)
	if !ok {
		if v.revoked(claims.APIKey) {
			return Key{}, fmt.Errorf("%w: key %q", ErrRevoked, truncate(claims.APIKey, MaxNameBytes))
		}
		return Key{}, fmt.Errorf("%w: akid %q", ErrUnknownKey, truncate(claims.APIKey, MaxNameBytes))
	}
	if k.App == "" {
		return Key{}, fmt.Errorf("%w: akid names a signing key", ErrInvalidClaims)
	}
	return k, nil
}

func (v *Verifier) revoked(kid string) bool {
	r, ok := v.Keys.(Revocations)
	return ok && r.Revoked(kid)
}

// key finds the key for t, whose algorithm the parser already checked
// against validMethods, and the material that verifies t's signature.
func (v *Verifier) key(t *jwt.Token) (Key, any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return Key{}, nil, fmt.Errorf("%w: no kid header", ErrMalformed)
	}
	k, ok := v.Keys.Lookup(kid)
	if !ok {
		if v.revoked(kid) {
			return Key{}, nil, fmt.Errorf("%w: kid %q", ErrRevoked, truncate(kid, MaxNameBytes))
		}
		return Key{}, nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, truncate(kid, MaxNameBytes))
	}
	alg := t.Method.Alg()
	get, ok := algorithms[alg]
	if !ok { // unreachable: the parser enforces validMethods
		return Key{}, nil, fmt.Errorf("%w: algorithm %q not supported", ErrSignature, truncate(alg, 16))
	}
	material, err := get(k)
	if err != nil {
		return Key{}, nil, fmt.Errorf("%w: key %q cannot verify %s: %w", ErrSignature, k.ID, alg, err)
	}
	return k, material, nil
}

// classify maps a JWT library error from before claims validation to one
// of the package's sentinels.
func classify(err error) error {
	err = bounded{err}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// Bad signature, an algorithm outside validMethods ("none"
		// included), or an unknown or missing "alg".
		return fmt.Errorf("%w: %w", ErrSignature, err)
	default:
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
}

// maxErrorBytes bounds the text of a wrapped library error, which may quote
// parts of an untrusted token (e.g. a JSON value that failed to decode).
const maxErrorBytes = 200

// bounded wraps an error, truncating its message to maxErrorBytes so that
// a hostile token cannot put kilobytes of its own text into logs.
type bounded struct{ err error }

func (b bounded) Error() string { return truncate(b.err.Error(), maxErrorBytes) }
func (b bounded) Unwrap() error { return b.err }
