package store

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

func TestPruneUsers(t *testing.T) {
	st, pool := newStore(t)
	ctx := context.Background()
	if _, err := st.CreateApp(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	k, err := st.CreateKey(ctx, "a", "", token.Capabilities{"*": {token.OpJoin}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutUserPolicy(ctx, UserPolicy{App: "a", KeyID: k.ID, Caps: token.Capabilities{"*": {token.OpJoin}},
		AccessTTL: time.Minute, RefreshTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, User{ID: "u1", App: "a", Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	live, _ := st.CreateSession(ctx, Session{ID: "s-live", App: "a", UserID: u.ID, RefreshExpiresAt: time.Now().Add(time.Hour)}, []byte("h-live"))
	old, _ := st.CreateSession(ctx, Session{ID: "s-old", App: "a", UserID: u.ID, RefreshExpiresAt: time.Now().Add(time.Hour)}, []byte("h-old"))
	if err := st.RevokeSession(ctx, u.ID, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RotateRefresh(ctx, "a", []byte("h-live"), []byte("h-live-2"), time.Now().Add(time.Hour), "", func(Session) error { return nil }); err != nil {
		t.Fatal(err)
	}
	_ = st.PutCode(ctx, u.ID, PurposeVerify, []byte("c"), time.Hour)
	_ = st.RecordAccessToken(ctx, "jti-live", live.ID, time.Now().Add(time.Minute))
	// Age what should go: the revoked session, an expired code, an
	// expired access token record, a retired hash older than refresh_ttl.
	for _, q := range []string{
		`UPDATE user_sessions SET revoked_at = now() - interval '31 days' WHERE id = 's-old'`,
		`UPDATE user_codes SET expires_at = now() - interval '1 second'`,
		`INSERT INTO user_access_tokens (jti, session_id, expires_at) VALUES ('jti-old', 's-live', now() - interval '1 second')`,
		`INSERT INTO user_refresh_retired (refresh_hash, session_id, retired_at) VALUES ('h-ancient', 's-live', now() - interval '2 hours')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.PruneUsers(ctx, 30*24*time.Hour)
	if err != nil || n != 4 {
		t.Fatalf("PruneUsers = %d, %v; want 4 rows", n, err)
	}
	var sessions, retired, tokens int
	_ = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM user_sessions), (SELECT count(*) FROM user_refresh_retired), (SELECT count(*) FROM user_access_tokens)`).Scan(&sessions, &retired, &tokens)
	if sessions != 1 || retired != 1 || tokens != 1 {
		t.Fatalf("left: %d sessions, %d retired hashes, %d access tokens; want the live ones (1 each)", sessions, retired, tokens)
	}
	// The retired hash still in the window is still reuse.
	if _, err := st.RotateRefresh(ctx, "a", []byte("h-live"), []byte("h-x"), time.Now().Add(time.Hour), "", func(Session) error { return nil }); err != ErrRefreshReused {
		t.Fatalf("reuse after pruning: %v", err)
	}
}
