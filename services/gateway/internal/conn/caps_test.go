package conn

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

func TestEqualCapabilitiesAreShared(t *testing.T) {
	a := token.Capabilities{"chat:*": {token.OpJoin, token.OpPublish}, "lobby": {token.OpJoin}}
	b := token.Capabilities{"lobby": {token.OpJoin}, "chat:*": {token.OpJoin, token.OpPublish}}
	other := token.Capabilities{"chat:*": {token.OpJoin}}
	// A pattern that would run into the next one without the length prefix.
	tricky := token.Capabilities{"chat:*,publish;lobby": {token.OpJoin}}
	ba, bb, bo, bt := shareCaps(a), shareCaps(b), shareCaps(other), shareCaps(tricky)
	if ba != bb {
		t.Fatal("equal capability sets are not shared")
	}
	if ba == bo || ba == bt || bo == bt {
		t.Fatal("different capability sets share a box")
	}
	if !ba.caps.Allows("chat:1", token.OpPublish) || bo.caps.Allows("chat:1", token.OpPublish) {
		t.Fatal("shared sets changed meaning")
	}
}

func TestKeepClaims(t *testing.T) {
	cl := &token.Claims{App: "a", APIKey: "k", Caps: token.Capabilities{"r": {token.OpJoin}}}
	cl.Subject = "client"
	cl.ID = "jti"
	kept, box := keepClaims(cl)
	if kept.App != "a" || kept.APIKey != "k" || kept.ClientID() != "client" || kept.ID != "" {
		t.Fatalf("kept %+v", kept)
	}
	if !kept.Caps.Allows("r", token.OpJoin) || box.caps == nil {
		t.Fatal("capabilities lost")
	}
}
