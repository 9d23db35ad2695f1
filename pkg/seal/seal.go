// Package seal protects secrets at rest: AES-256-GCM encryption under a
// master key for what a service must read back (the auth service's API key
// secrets, which gateways need to verify HS256 tokens, and Ed25519 private
// keys; the webhooks service's endpoint signing secrets), and SHA-256
// for what it only compares (an API key's secret when the key
// authenticates). Key secrets are 256 random bits, so a fast hash is as good
// as a password KDF here.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// version is the first byte of every sealed value, so that a later master
// key rotation can tell which key sealed what.
const version byte = 1

// ErrOpen is returned for a sealed value that does not decrypt: another
// master key, another context, or tampering.
var ErrOpen = errors.New("seal: cannot open: wrong master key, context or corrupted value")

// Sealer encrypts and decrypts with one master key. It is safe for
// concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New creates a Sealer from a 32-byte master key.
func New(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != 32 {
		return nil, fmt.Errorf("seal: master key must be 32 bytes, got %d", len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext. context (e.g. "api-key:<app>.<id>") is
// authenticated but not stored: a value opens only with the same context,
// so a sealed secret copied onto another row is useless.
func (s *Sealer) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	out := append([]byte{version}, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(context))
}

// Open decrypts a value made by Seal with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Hash returns the SHA-256 of secret, the form stored for comparison.
func Hash(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// Equal reports in constant time whether secret hashes to stored.
func Equal(stored, secret []byte) bool {
	return subtle.ConstantTimeCompare(stored, Hash(secret)) == 1
}

// EqualStrings reports in constant time whether a and b are equal,
// whatever their lengths (both are hashed first, so the time does not tell
// the expected length either). For configured credentials.
func EqualStrings(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
