// Package session keeps client sessions in Redis so that a client that
// reconnects to any gateway node within the recovery window can resume:
// keep its session identity (presence and webhooks see no leave/join) and
// learn the rooms it had joined. Messages themselves are recovered per room
// from the room's recovery stream (join with since).
//
// Keys, all sharing the session's hash tag (Redis Cluster):
//
//	<prefix>session{<id>}        hash: app, client, token (SHA-256 of the resume token, hex)
//	<prefix>session{<id>}:rooms  set of joined room names
//
// Both expire TTL after the last touch; gateway nodes touch the sessions of
// their live connections every heartbeat, so a session outlives its
// connection by at most the recovery window.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Config's zero values.
const (
	DefaultPrefix = "rc:"
	DefaultTTL    = 2 * time.Minute
)

// ErrInvalid is the one answer to a resume that cannot succeed: no such
// session, expired, wrong token, another app or another client. One error
// for all so the answer tells an attacker nothing.
var ErrInvalid = errors.New("session: invalid or expired session")

// Config tunes a Store.
type Config struct {
	// Prefix starts every key. Zero means "rc:".
	Prefix string
	// TTL is the recovery window: how long a session outlives its last
	// touch. Zero means 2 minutes.
	TTL time.Duration
}

// Session is a resumable client session.
type Session struct {
	ID       string
	App      string
	ClientID string
}

// Store keeps sessions in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

//go:embed rotate.lua
var rotateSource string

var rotateScript = redis.NewScript(rotateSource)

// New creates a store.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	return &Store{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.TTL}
}

// TTL is the recovery window.
func (s *Store) TTL() time.Duration { return s.ttl }

func (s *Store) keys(id string) (hash, rooms string) {
	base := s.prefix + "session{" + id + "}"
	return base, base + ":rooms"
}

// Create starts a session and returns it with its secret resume token.
func (s *Store) Create(ctx context.Context, app, clientID string) (Session, string, error) {
	id, err := randomString(16, hex.EncodeToString)
	if err != nil {
		return Session{}, "", err
	}
	tok, err := randomString(32, base64.RawURLEncoding.EncodeToString)
	if err != nil {
		return Session{}, "", err
	}
	hash, _ := s.keys(id)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, hash, "app", app, "client", clientID, "token", tokenHash(tok))
		p.PExpire(ctx, hash, s.ttl)
		return nil
	})
	if err != nil {
		return Session{}, "", fmt.Errorf("session: create: %w", err)
	}
	return Session{ID: id, App: app, ClientID: clientID}, tok, nil
}

// Resume checks a session id and resume token for the given app and
// client, rotates the token and returns the session's rooms with the new
// token. Every mismatch is ErrInvalid.
func (s *Store) Resume(ctx context.Context, id, tok, app, clientID string) (rooms []string, newToken string, err error) {
	if id == "" || tok == "" || len(id) > 64 || strings.ContainsAny(id, "{}") {
		return nil, "", ErrInvalid
	}
	hash, roomsKey := s.keys(id)
	fields, err := s.rdb.HGetAll(ctx, hash).Result()
	if err != nil {
		return nil, "", fmt.Errorf("session: resume: %w", err)
	}
	given := tokenHash(tok)
	stored := fields["token"]
	// Constant-time: compare the token hash before looking at anything else.
	ok := subtle.ConstantTimeCompare([]byte(given), []byte(stored)) == 1
	if !ok || stored == "" || fields["app"] != app || fields["client"] != clientID {
		return nil, "", ErrInvalid
	}
	newToken, err = randomString(32, base64.RawURLEncoding.EncodeToString)
	if err != nil {
		return nil, "", err
	}
	n, err := rotateScript.Run(ctx, s.rdb, []string{hash, roomsKey}, stored, tokenHash(newToken), s.ttl.Milliseconds()).Int()
	if err != nil {
		return nil, "", fmt.Errorf("session: rotate token: %w", err)
	}
	if n != 1 {
		return nil, "", ErrInvalid // resumed by someone else meanwhile
	}
	rooms, err = s.rdb.SMembers(ctx, roomsKey).Result()
	if err != nil {
		return nil, "", fmt.Errorf("session: rooms: %w", err)
	}
	return rooms, newToken, nil
}

// AddRoom records that the session joined room.
func (s *Store) AddRoom(ctx context.Context, id, room string) error {
	_, roomsKey := s.keys(id)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, roomsKey, room)
		p.PExpire(ctx, roomsKey, s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: add room: %w", err)
	}
	return nil
}

// RemoveRoom records that the session left room.
func (s *Store) RemoveRoom(ctx context.Context, id, room string) error {
	_, roomsKey := s.keys(id)
	if err := s.rdb.SRem(ctx, roomsKey, room).Err(); err != nil {
		return fmt.Errorf("session: remove room: %w", err)
	}
	return nil
}

// Touch extends the given live sessions by the TTL, in one round trip.
func (s *Store) Touch(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			hash, roomsKey := s.keys(id)
			p.PExpire(ctx, hash, s.ttl)
			p.PExpire(ctx, roomsKey, s.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("session: touch: %w", err)
	}
	return nil
}

// Delete ends a session (the client closed it on purpose).
func (s *Store) Delete(ctx context.Context, id string) error {
	hash, roomsKey := s.keys(id)
	if err := s.rdb.Del(ctx, hash, roomsKey).Err(); err != nil {
		return fmt.Errorf("session: delete: %w", err)
	}
	return nil
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func randomString(n int, enc func([]byte) string) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: random: %w", err)
	}
	return enc(b), nil
}
