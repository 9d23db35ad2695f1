package rest_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/webhooks"
)

func signed(t *testing.T, secrets []string, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := webhooks.SignatureHeader(secrets, id, at.Unix(), body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestVerifyWebhook(t *testing.T) {
	secret, other := webhooks.NewSecret(), webhooks.NewSecret()
	body := []byte(`{"id":"evt_1","type":"message.published","app":"a","room":"r","time":"2025-01-01T00:00:00Z","data":{}}`)
	h := signed(t, []string{secret}, "evt_1", time.Now(), body)
	if err := rest.VerifyWebhook(body, h, []string{secret}, 0); err != nil {
		t.Fatalf("genuine webhook refused: %v", err)
	}
	// During a rotation the receiver holds both secrets.
	if err := rest.VerifyWebhook(body, h, []string{other, secret}, 0); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-2] = ' '
	if err := rest.VerifyWebhook(tampered, h, []string{secret}, 0); !errors.Is(err, webhooks.ErrSignature) {
		t.Errorf("tampered body: %v", err)
	}
	if err := rest.VerifyWebhook(body, h, []string{other}, 0); !errors.Is(err, webhooks.ErrSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	stale := signed(t, []string{secret}, "evt_1", time.Now().Add(-10*time.Minute), body)
	if err := rest.VerifyWebhook(body, stale, []string{secret}, 0); !errors.Is(err, webhooks.ErrTimestamp) {
		t.Errorf("stale timestamp: %v", err)
	}
	if err := rest.VerifyWebhook(body, stale, []string{secret}, time.Hour); err != nil {
		t.Errorf("stale within a wider tolerance: %v", err)
	}
}
