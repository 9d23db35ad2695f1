package session

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/testenv"
)

func newStore(t *testing.T, ttl time.Duration) (*Store, func(string) time.Duration) {
	rdb, prefix := testenv.Redis(t)
	s := New(rdb, Config{Prefix: prefix, TTL: ttl})
	pttl := func(key string) time.Duration { return rdb.PTTL(context.Background(), key).Val() }
	return s, pttl
}

func TestCreateResumeRotates(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)
	sess, tok, err := s.Create(ctx, "app", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoom(ctx, sess.ID, "a.b"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoom(ctx, sess.ID, "c/d"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveRoom(ctx, sess.ID, "a.b"); err != nil {
		t.Fatal(err)
	}
	rooms, tok2, err := s.Resume(ctx, sess.ID, tok, "app", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0] != "c/d" {
		t.Fatalf("rooms %v", rooms)
	}
	if tok2 == tok || tok2 == "" {
		t.Fatal("resume did not rotate the token")
	}
	if _, _, err := s.Resume(ctx, sess.ID, tok, "app", "alice"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the rotated-out token still resumes: %v", err)
	}
	if _, _, err := s.Resume(ctx, sess.ID, tok2, "app", "alice"); err != nil {
		t.Fatalf("the new token: %v", err)
	}
}

func TestResumeRefusesEveryMismatchAlike(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)
	sess, tok, err := s.Create(ctx, "app", "alice")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][4]string{
		"wrong token":    {sess.ID, tok + "x", "app", "alice"},
		"another app":    {sess.ID, tok, "other", "alice"},
		"another client": {sess.ID, tok, "app", "mallory"},
		"unknown id":     {"0123456789abcdef", tok, "app", "alice"},
		"empty":          {"", "", "app", "alice"},
		"hash tag id":    {"}{", tok, "app", "alice"},
	}
	for name, c := range cases {
		if _, _, err := s.Resume(ctx, c[0], c[1], c[2], c[3]); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	// None of the failures consumed the session.
	if _, _, err := s.Resume(ctx, sess.ID, tok, "app", "alice"); err != nil {
		t.Fatalf("valid resume after failures: %v", err)
	}
}

func TestConcurrentResumesWithOneTokenOnlyOneWins(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)
	sess, tok, err := s.Create(ctx, "app", "alice")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Resume(ctx, sess.ID, tok, "app", "alice"); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d resumes succeeded with one token, want 1", wins)
	}
}

func TestExpiryAndTouch(t *testing.T) {
	ctx := context.Background()
	s, pttl := newStore(t, 400*time.Millisecond)
	live, liveTok, _ := s.Create(ctx, "app", "live")
	idle, idleTok, _ := s.Create(ctx, "app", "idle")
	_ = s.AddRoom(ctx, live.ID, "r")
	hash, _ := s.keys(live.ID)
	if d := pttl(hash); d <= 0 || d > 400*time.Millisecond {
		t.Fatalf("session ttl %s", d)
	}
	deadline := time.Now().Add(1200 * time.Millisecond)
	for time.Now().Before(deadline) { // keep one alive for three TTLs
		if err := s.Touch(ctx, live.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, err := s.Resume(ctx, idle.ID, idleTok, "app", "idle"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an untouched session outlived its TTL: %v", err)
	}
	rooms, _, err := s.Resume(ctx, live.ID, liveTok, "app", "live")
	if err != nil {
		t.Fatalf("a touched session expired: %v", err)
	}
	sort.Strings(rooms)
	if len(rooms) != 1 || rooms[0] != "r" {
		t.Fatalf("rooms %v", rooms)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)
	sess, tok, _ := s.Create(ctx, "app", "alice")
	if err := s.Delete(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Resume(ctx, sess.ID, tok, "app", "alice"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deleted session resumed: %v", err)
	}
}

func TestResumeWithRedisDown(t *testing.T) {
	s, _ := newStore(t, time.Minute)
	_ = s.rdb.Close()
	_, _, err := s.Resume(context.Background(), "0123456789abcdef", "tok", "app", "alice")
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("want an availability error, distinct from ErrInvalid; got %v", err)
	}
}
