package accounts

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

func TestIDsCodesAndCaps(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id := newID("u")
		if !IsUserID(id) || seen[id] {
			t.Fatalf("newID: %q", id)
		}
		seen[id] = true
		c := newCode()
		if len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("newCode: %q", c)
		}
	}
	for _, bad := range []string{"", "u", "x" + strings.Repeat("a", 20), "u" + strings.Repeat("A", 20), "u" + strings.Repeat("a", 21), "u" + strings.Repeat("1", 20)} {
		if IsUserID(bad) {
			t.Errorf("IsUserID(%q)", bad)
		}
	}
	caps := UserCaps(token.Capabilities{"user.{user}": {token.OpJoin}, "chat.*": {token.OpPublish}, "dm.{user}.*": {token.OpJoin}}, "uabc")
	if !caps.Allows("user.uabc", token.OpJoin) || !caps.Allows("dm.uabc.x", token.OpJoin) || caps.Allows("user.other", token.OpJoin) || !caps.Allows("chat.a", token.OpPublish) {
		t.Fatalf("UserCaps: %v", caps)
	}
	if !capsWithinForAnyUser(token.Capabilities{"user.{user}": {token.OpJoin}}, token.Capabilities{"user.*": {token.OpJoin}}) ||
		capsWithinForAnyUser(token.Capabilities{"user.{user}": {token.OpJoin}}, token.Capabilities{"user.uaaaaaaaaaaaaaaaaaaaa": {token.OpJoin}}) {
		t.Fatal("capsWithinForAnyUser")
	}
	for in, ok := range map[string]bool{"a@b.c": true, " a@b.c ": true, "a b@c.d": false, "@b.c": false, "a@": false, "nope": false, "a@b\x00": false} {
		if _, err := normEmail(in); (err == nil) != ok {
			t.Errorf("normEmail(%q): %v", in, err)
		}
	}
	if !bytes.Equal(codeHash("u1", "verify", " 123456 "), codeHash("u1", "verify", "123456")) || bytes.Equal(codeHash("u1", "verify", "1"), codeHash("u1", "reset", "1")) {
		t.Fatal("codeHash: not bound to purpose, or spaces matter")
	}
}

func newService(t *testing.T) (*Service, *mail.Capture) {
	t.Helper()
	pool := authtest.Pool(t)
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{7}, 32))
	st := store.New(pool, sealer)
	if _, err := st.RotateSigningKeyIfOlder(ctx, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateApp(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	k, err := st.CreateKey(ctx, "a", "", token.Capabilities{"*": {token.OpJoin}})
	if err != nil {
		t.Fatal(err)
	}
	var c mail.Capture
	s := New(st, rdb, sealer, &c, Config{Prefix: prefix}, slog.New(slog.DiscardHandler))
	if _, err := s.PutPolicy(ctx, "a", authapi.UserPolicy{Key: k.ID, Caps: token.Capabilities{"room.{user}": {token.OpJoin}}, Signup: true}); err != nil {
		t.Fatal(err)
	}
	return s, &c
}

// A sign-in for an unknown email, or for a user without a password,
// computes one argon2id hash, as a wrong password does: the time taken
// does not tell which emails have accounts.
func TestUnknownEmailCostsAPasswordHash(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	if err := s.SignUp(ctx, "a", "known@example.com", "password-1", Client{IP: "1.2.3.4"}); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Last("known@example.com", mail.KindVerify)
	if _, err := s.Verify(ctx, "a", "known@example.com", m.Code, Client{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.CreateUser(ctx, store.User{ID: newID("u"), App: "a", Email: "nopw@example.com", EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"known@example.com", "unknown@example.com", "nopw@example.com", "not an email"} {
		before := s.passwordChecks.Load()
		if _, err := s.SignIn(ctx, "a", email, "wrong-password", Client{IP: "1.2.3.4"}); err != ErrInvalidCredentials {
			t.Fatalf("%s: %v", email, err)
		}
		if n := s.passwordChecks.Load() - before; n != 1 {
			t.Errorf("%s: %d password hashes computed, want 1", email, n)
		}
	}
}

func TestOAuthLinking(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	cl := Client{IP: "1.2.3.4"}
	// A verified user, and one whose email nobody proved (a squatter's).
	if err := s.SignUp(ctx, "a", "ada@example.com", "password-1", cl); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Last("ada@example.com", mail.KindVerify)
	ada, err := s.Verify(ctx, "a", "ada@example.com", m.Code, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SignUp(ctx, "a", "bob@example.com", "squatter-pw", cl); err != nil {
		t.Fatal(err)
	}

	// Same verified email: linked to the existing user.
	r, err := s.OAuthSignIn(ctx, "a", Identity{Provider: "corp", Subject: "1", Email: "ADA@example.com", EmailVerified: true}, cl)
	if err != nil || r.User.ID != ada.User.ID {
		t.Fatalf("link by verified email: %+v %v", r.User, err)
	}
	// Later sign-ins find the identity, whatever email it now claims.
	r, err = s.OAuthSignIn(ctx, "a", Identity{Provider: "corp", Subject: "1", Email: "other@example.com", EmailVerified: true}, cl)
	if err != nil || r.User.ID != ada.User.ID {
		t.Fatalf("linked identity: %+v %v", r.User, err)
	}
	// An unverified email from the provider is not used to link: a new user.
	r, err = s.OAuthSignIn(ctx, "a", Identity{Provider: "corp", Subject: "2", Email: "ada@example.com"}, cl)
	if err != nil || r.User.ID == ada.User.ID || r.User.Email != "" {
		t.Fatalf("unverified provider email: %+v %v", r.User, err)
	}
	// The squatted account is taken over by the provider's verified owner;
	// the squatter's password stops working.
	r, err = s.OAuthSignIn(ctx, "a", Identity{Provider: "corp", Subject: "3", Email: "bob@example.com", EmailVerified: true}, cl)
	if err != nil || !r.User.EmailVerified || r.User.Email != "bob@example.com" {
		t.Fatalf("claim unverified account: %+v %v", r.User, err)
	}
	if _, err := s.SignIn(ctx, "a", "bob@example.com", "squatter-pw", cl); err != ErrInvalidCredentials {
		t.Fatalf("squatter's password after the takeover: %v", err)
	}
	// Blocked users stay out.
	if _, err := s.SetBlocked(ctx, "a", ada.User.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OAuthSignIn(ctx, "a", Identity{Provider: "corp", Subject: "1"}, cl); err != ErrInvalidCredentials {
		t.Fatalf("blocked user: %v", err)
	}
}

// A second sign-up of an address nobody verified yet replaces the
// password: whoever proves the mailbox decides it.
func TestSignUpAgainBeforeVerification(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	cl := Client{IP: "1.2.3.4"}
	if err := s.SignUp(ctx, "a", "eve@example.com", "attacker-pw", cl); err != nil {
		t.Fatal(err)
	}
	if err := s.SignUp(ctx, "a", "eve@example.com", "owner-pw-1", cl); err != nil {
		t.Fatal(err)
	}
	m, _ := c.Last("eve@example.com", mail.KindVerify)
	if _, err := s.Verify(ctx, "a", "eve@example.com", m.Code, cl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignIn(ctx, "a", "eve@example.com", "attacker-pw", cl); err != ErrInvalidCredentials {
		t.Fatalf("first sign-up's password: %v", err)
	}
	if _, err := s.SignIn(ctx, "a", "eve@example.com", "owner-pw-1", cl); err != nil {
		t.Fatalf("the verified owner's password: %v", err)
	}
	// Once verified, a sign-up changes nothing and mails the owner.
	if err := s.SignUp(ctx, "a", "eve@example.com", "attacker-pw", cl); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Last("eve@example.com", mail.KindExisting); !ok {
		t.Fatal("no 'you already have an account' mail")
	}
	if _, err := s.SignIn(ctx, "a", "eve@example.com", "owner-pw-1", cl); err != nil {
		t.Fatalf("password after a later sign-up: %v", err)
	}
}

func TestMailLink(t *testing.T) {
	s := &Service{cfg: Config{MailLink: "https://app.example.com/auth?app={app}&step={purpose}&email={email}&code={code}"}}
	got := s.link("shop", "verify", "a+b@example.com", "012345")
	if got != "https://app.example.com/auth?app=shop&step=verify&email=a%2Bb%40example.com&code=012345" {
		t.Fatalf("link: %s", got)
	}
	if (&Service{}).link("a", "b", "c", "d") != "" {
		t.Fatal("a link without AUTH_MAIL_LINK")
	}
}
