package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret; the rest is the base64 of the
// HMAC key.
const SecretPrefix = "whsec_"

// SecretBytes is the size of generated HMAC keys.
const SecretBytes = 32

// DefaultTolerance is how far a webhook-timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// NewSecret returns a new random signing secret.
func NewSecret() string {
	b := make([]byte, SecretBytes)
	_, _ = rand.Read(b) // never fails on supported platforms
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// secretKey decodes a "whsec_<base64>" secret into its HMAC key.
func secretKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhooks: secret must start with " + SecretPrefix)
	}
	k, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(k) == 0 {
		return nil, errors.New("webhooks: secret is not valid base64")
	}
	return k, nil
}

// Sign returns one "v1,<base64 HMAC-SHA256>" signature of id.timestamp.body.
func Sign(secret, id string, ts int64, body []byte) (string, error) {
	k, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(mac(k, id, ts, body)), nil
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(ts, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// SignatureHeader signs with every secret (one during a rotation's
// overlap, two or more while it lasts) and joins the signatures with
// spaces, the value of the webhook-signature header.
func SignatureHeader(secrets []string, id string, ts int64, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verification errors.
var (
	ErrMissingHeaders = errors.New("webhooks: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrTimestamp      = errors.New("webhooks: timestamp outside the tolerance")
	ErrSignature      = errors.New("webhooks: no signature matches")
)

// MaxSignatures bounds how many signatures of a header are checked.
const MaxSignatures = 16

// ParseSignatures returns the v1 signatures (decoded) of a webhook-signature
// header value: space-separated "<version>,<base64>" entries. Entries of
// other versions and malformed ones are skipped; at most MaxSignatures are
// returned.
func ParseSignatures(header string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(header) {
		if len(out) == MaxSignatures {
			break
		}
		ver, sig, ok := strings.Cut(f, ",")
		if !ok || ver != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(b) != sha256.Size {
			continue
		}
		out = append(out, b)
	}
	return out
}

// Verify checks a received webhook: its timestamp is within tolerance of
// now (≤ 0: DefaultTolerance) and one of the header's signatures is the
// HMAC of id.timestamp.body under one of secrets (several during a
// rotation). Every comparison is constant-time.
func Verify(secrets []string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, tsRaw, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsRaw == "" || sigs == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a unix time", ErrTimestamp, tsRaw)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	got := ParseSignatures(sigs)
	ok := false
	for _, s := range secrets {
		k, err := secretKey(s)
		if err != nil {
			return err
		}
		want := mac(k, id, ts, body)
		for _, g := range got {
			// No early exit: the time taken does not tell which matched.
			if hmac.Equal(g, want) {
				ok = true
			}
		}
	}
	if !ok {
		return ErrSignature
	}
	return nil
}
