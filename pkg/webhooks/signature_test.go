package webhooks_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/webhooks"
)

// The example of the Standard Webhooks specification and its reference
// libraries: an implementation that disagrees would not interoperate.
func TestSignMatchesStandardWebhooksVector(t *testing.T) {
	sig, err := webhooks.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
		t.Fatalf("Sign = %s, want %s", sig, want)
	}
}

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(webhooks.HeaderID, id)
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(webhooks.HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	old, cur := webhooks.NewSecret(), webhooks.NewSecret()
	body := []byte(`{"id":"evt_1","type":"room.occupied"}`)
	both, err := webhooks.SignatureHeader([]string{old, cur}, "evt_1", now.Unix(), body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(both, "v1,") != 2 {
		t.Fatalf("header %q, want two signatures", both)
	}
	// Both sides of a rotation verify while both secrets sign.
	for _, s := range []string{old, cur} {
		if err := webhooks.Verify([]string{s}, headers("evt_1", now.Unix(), both), body, 0, now); err != nil {
			t.Errorf("rotation overlap: %v", err)
		}
	}
	only, _ := webhooks.SignatureHeader([]string{cur}, "evt_1", now.Unix(), body)
	cases := map[string]struct {
		secrets []string
		h       http.Header
		body    []byte
		want    error
	}{
		"tampered body":     {[]string{cur}, headers("evt_1", now.Unix(), only), []byte(`{"id":"evt_1","type":"room.vacated"}`), webhooks.ErrSignature},
		"wrong secret":      {[]string{old}, headers("evt_1", now.Unix(), only), body, webhooks.ErrSignature},
		"other id":          {[]string{cur}, headers("evt_2", now.Unix(), only), body, webhooks.ErrSignature},
		"stale timestamp":   {[]string{cur}, headers("evt_1", now.Add(-6*time.Minute).Unix(), only), body, webhooks.ErrTimestamp},
		"future timestamp":  {[]string{cur}, headers("evt_1", now.Add(6*time.Minute).Unix(), only), body, webhooks.ErrTimestamp},
		"missing signature": {[]string{cur}, headers("evt_1", now.Unix(), ""), body, webhooks.ErrMissingHeaders},
		"other version":     {[]string{cur}, headers("evt_1", now.Unix(), strings.Replace(only, "v1,", "v2,", 1)), body, webhooks.ErrSignature},
	}
	for name, c := range cases {
		if err := webhooks.Verify(c.secrets, c.h, c.body, 0, now); err != c.want {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
	if err := webhooks.Verify([]string{cur}, headers("evt_1", now.Unix(), only), body, 0, now); err != nil {
		t.Errorf("genuine: %v", err)
	}
}

func FuzzParseSignatures(f *testing.F) {
	f.Add("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	f.Add("v1,a v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,xyz")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		sigs := webhooks.ParseSignatures(header)
		if len(sigs) > webhooks.MaxSignatures {
			t.Fatalf("%d signatures", len(sigs))
		}
		for _, s := range sigs {
			if len(s) != 32 {
				t.Fatalf("signature of %d bytes", len(s))
			}
		}
		h := http.Header{}
		h.Set(webhooks.HeaderID, "x")
		h.Set(webhooks.HeaderTimestamp, "1")
		h.Set(webhooks.HeaderSignature, header)
		_ = webhooks.Verify([]string{"whsec_AAAA"}, h, nil, time.Hour, time.Unix(1, 0))
	})
}
