package token

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testSecret = "s3cr3t-0123456789abcdef"

func TestParseAPIKey(t *testing.T) {
	good := []struct {
		in          string
		app, id, sc string
	}{
		{"demo.k1:" + testSecret, "demo", "k1", testSecret},
		{"my_app-2.KEY_id-9:0123456789abcdef", "my_app-2", "KEY_id-9", "0123456789abcdef"},
		{"a.b:" + "x:y.z!@#$%^&*()[]{}", "a", "b", "x:y.z!@#$%^&*()[]{}"}, // ':' and '.' allowed in the secret
		{strings.Repeat("a", 64) + "." + strings.Repeat("b", 64) + ":" + strings.Repeat("c", MaxSecretBytes),
			strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", MaxSecretBytes)},
	}
	for _, tt := range good {
		k, err := ParseAPIKey(tt.in)
		if err != nil {
			t.Errorf("ParseAPIKey(%q): %v", tt.in, err)
			continue
		}
		if k.App != tt.app || k.ID != tt.id || string(k.Secret) != tt.sc {
			t.Errorf("ParseAPIKey(%q) = %q/%q/%q, want %q/%q/%q", tt.in, k.App, k.ID, k.Secret, tt.app, tt.id, tt.sc)
		}
		if s := k.String(); s != tt.in {
			t.Errorf("String() = %q, want %q", s, tt.in)
		}
	}

	bad := []string{
		"",
		"demo",
		"demok1:" + testSecret,         // no '.'
		"demo.k1" + testSecret,         // no ':'
		".k1:" + testSecret,            // empty app
		"demo.:" + testSecret,          // empty key id
		"demo.k1:",                     // empty secret
		"demo.k1:short",                // secret under 16 bytes
		"demo.k1:" + testSecret[:15],   // 15 bytes
		"de mo.k1:" + testSecret,       // space in app
		"démo.k1:" + testSecret,        // non-ASCII app
		"demo.k/1:" + testSecret,       // '/' in key id
		"demo.k1.x:" + testSecret,      // '.' in key id
		"demo.k1:" + testSecret + " x", // space in secret
		"demo.k1:" + testSecret + ",x", // ',' in secret
		"demo.k1:" + testSecret + "\n", // control character in secret
		"demo.k1:" + testSecret + "é",  // non-ASCII secret
		strings.Repeat("a", 65) + ".k1:" + testSecret,
		"demo." + strings.Repeat("b", 65) + ":" + testSecret,
		"demo.k1:" + strings.Repeat("c", MaxSecretBytes+1),
	}
	for _, in := range bad {
		_, err := ParseAPIKey(in)
		if err == nil {
			t.Errorf("ParseAPIKey(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), testSecret[:10]) {
			t.Errorf("ParseAPIKey error %q reveals the secret", err)
		}
	}
}

func TestKeyRedaction(t *testing.T) {
	k := Key{App: "demo", ID: "k1", Secret: []byte(testSecret)}
	fp := Fingerprint(testSecret)
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", k),
		"%+v":    fmt.Sprintf("%+v", k),
		"%#v":    fmt.Sprintf("%#v", k),
		"%s":     fmt.Sprintf("%s", k),
		"%q":     fmt.Sprintf("%q", k),
		"Sprint": fmt.Sprint(k),
		"nested": fmt.Sprintf("%+v", struct{ Keys StaticKeyring }{NewStaticKeyring(k)}),
		"slice":  fmt.Sprint([]Key{k}),
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("key", "key", k)
	outputs["slog text"] = buf.String()
	buf.Reset()
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "key", k)
	outputs["slog json"] = buf.String()
	for name, out := range outputs {
		if strings.Contains(out, testSecret) {
			t.Errorf("%s form reveals the secret: %s", name, out)
		}
		if !strings.Contains(out, fp) {
			t.Errorf("%s form lacks the fingerprint %s: %s", name, fp, out)
		}
	}
}

func TestParseKeyList(t *testing.T) {
	keys, err := ParseKeyList(" demo.k1:" + testSecret + " , ,other.k2:0123456789abcdef,")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k1" || keys[0].App != "demo" || keys[1].ID != "k2" || keys[1].App != "other" {
		t.Fatalf("ParseKeyList = %v", keys)
	}
	if keys, err := ParseKeyList(""); err != nil || len(keys) != 0 {
		t.Errorf(`ParseKeyList("") = %v, %v; want no keys`, keys, err)
	}
	for _, in := range []string{
		"demo.k1:" + testSecret + ",other.k1:0123456789abcdef", // duplicate key id
		"demo.k1:" + testSecret + ",garbage",
		"demo.k1:" + testSecret + ",demo.k2:" + testSecret[:10],
	} {
		_, err := ParseKeyList(in)
		if err == nil {
			t.Errorf("ParseKeyList(%q) succeeded, want an error", in)
			continue
		}
		if strings.Contains(err.Error(), testSecret[:10]) {
			t.Errorf("ParseKeyList error %q reveals a secret", err)
		}
	}
}

func TestStaticKeyring(t *testing.T) {
	a := Key{App: "a", ID: "k1", Secret: []byte(testSecret)}
	b := Key{App: "b", ID: "k2", Secret: []byte(testSecret)}
	var r Keyring = NewStaticKeyring(a, b)
	if k, ok := r.Lookup("k2"); !ok || k.App != "b" {
		t.Errorf("Lookup(k2) = %v, %v", k, ok)
	}
	if _, ok := r.Lookup("k3"); ok {
		t.Error("Lookup(k3) found a key")
	}
	if _, ok := r.Lookup(""); ok {
		t.Error(`Lookup("") found a key`)
	}
}

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
	if got := Fingerprint("abc"); got != "ba7816bf8f01" {
		t.Errorf(`Fingerprint("abc") = %q, want "ba7816bf8f01"`, got)
	}
	if Fingerprint("a") == Fingerprint("b") {
		t.Error("different secrets share a fingerprint")
	}
}
