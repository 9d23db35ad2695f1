// Package mail sends the end-user mails of the auth service (email codes,
// "you already have an account") through a pluggable Sender: Log for
// development (it logs the code and the link), SMTP for production, and
// Capture for tests.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Kind is what a mail is for.
type Kind string

// Mail kinds. Verify, SignIn and Reset carry a code; Existing tells the
// owner of an address that someone tried to sign up with it again.
const (
	KindVerify   Kind = "verify"
	KindSignIn   Kind = "signin"
	KindReset    Kind = "reset"
	KindExisting Kind = "existing"
)

// Message is one mail to one address.
type Message struct {
	App  string
	To   string
	Kind Kind
	// Code is the 6-digit code (empty for KindExisting); Link the app's
	// page that completes the step, if configured.
	Code string
	Link string
}

// Subject and Body render the mail as plain text.
func (m Message) Subject() string {
	switch m.Kind {
	case KindVerify:
		return "Your verification code: " + m.Code
	case KindSignIn:
		return "Your sign-in code: " + m.Code
	case KindReset:
		return "Your password reset code: " + m.Code
	default:
		return "You already have an account"
	}
}

// Body is the mail's text.
func (m Message) Body() string {
	var b strings.Builder
	switch m.Kind {
	case KindExisting:
		b.WriteString("Someone tried to sign up with this address, which already has an account.\r\n" +
			"If it was you, sign in, or reset your password if you forgot it. Otherwise ignore this mail.\r\n")
	default:
		fmt.Fprintf(&b, "Your code is %s. It expires soon and works once.\r\n", m.Code)
		if m.Link != "" {
			fmt.Fprintf(&b, "Or open %s\r\n", m.Link)
		}
		b.WriteString("If you did not ask for it, ignore this mail.\r\n")
	}
	return b.String()
}

// Sender sends a mail. It may block (SMTP); callers that must not wait use
// Async.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Log is the development sender: it logs the code and the link instead
// of mailing them. Never use it in production: codes are secrets.
type Log struct{ Logger *slog.Logger }

// Send logs m.
func (l Log) Send(_ context.Context, m Message) error {
	l.Logger.Info("mail (AUTH_MAIL=log: not sent)", "app", m.App, "to", m.To, "kind", string(m.Kind), "code", m.Code, "link", m.Link)
	return nil
}

// SMTP sends through an SMTP server with net/smtp (STARTTLS when the
// server offers it; PLAIN auth when the URL has a user, which net/smtp
// allows only over TLS or to localhost).
type SMTP struct {
	Addr string // host:port
	Auth smtp.Auth
	From string
}

// NewSMTP parses smtp://user:pass@host:port.
func NewSMTP(rawURL, from string) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" {
		return nil, errors.New("mail: AUTH_SMTP_URL must look like smtp://user:pass@host:587")
	}
	if from == "" {
		return nil, errors.New("mail: AUTH_MAIL_FROM is required with AUTH_MAIL=smtp")
	}
	port := u.Port()
	if port == "" {
		port = "587"
	}
	s := &SMTP{Addr: net.JoinHostPort(u.Hostname(), port), From: from}
	if u.User != nil {
		pw, _ := u.User.Password()
		s.Auth = smtp.PlainAuth("", u.User.Username(), pw, u.Hostname())
	}
	return s, nil
}

// Send mails m.
func (s *SMTP) Send(_ context.Context, m Message) error {
	if strings.ContainsAny(m.To, "\r\n") {
		return errors.New("mail: bad recipient")
	}
	msg := "From: " + s.From + "\r\nTo: " + m.To + "\r\nSubject: " + m.Subject() +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + m.Body()
	if err := smtp.SendMail(s.Addr, s.Auth, s.From, []string{m.To}, []byte(msg)); err != nil {
		return fmt.Errorf("mail: smtp: %w", err)
	}
	return nil
}

// Capture keeps every mail, for tests.
type Capture struct {
	mu   sync.Mutex
	sent []Message
}

// Send records m.
func (c *Capture) Send(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
	return nil
}

// Sent returns every mail so far.
func (c *Capture) Sent() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.sent...)
}

// Last returns the newest mail of kind to to, if any.
func (c *Capture) Last(to string, kind Kind) (Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.sent) - 1; i >= 0; i-- {
		if strings.EqualFold(c.sent[i].To, to) && c.sent[i].Kind == kind {
			return c.sent[i], true
		}
	}
	return Message{}, false
}

// Async sends through a Sender from a few goroutines, so a request never
// waits for the mail server: an answer that took as long as an SMTP
// exchange would tell that the address has an account. When the queue is
// full, mails are dropped and logged.
type Async struct {
	s       Sender
	log     *slog.Logger
	ch      chan Message
	timeout time.Duration
	wg      sync.WaitGroup
}

// NewAsync starts workers sending through s. Stop it with Close.
func NewAsync(s Sender, log *slog.Logger, workers, queue int) *Async {
	a := &Async{s: s, log: log, ch: make(chan Message, queue), timeout: 30 * time.Second}
	for range workers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for m := range a.ch {
				ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
				if err := a.s.Send(ctx, m); err != nil {
					a.log.Warn("mail not sent", "app", m.App, "kind", string(m.Kind), "err", err)
				}
				cancel()
			}
		}()
	}
	return a
}

// Send queues m; it never blocks.
func (a *Async) Send(_ context.Context, m Message) error {
	select {
	case a.ch <- m:
	default:
		a.log.Warn("mail dropped: queue full", "app", m.App, "kind", string(m.Kind))
	}
	return nil
}

// Close sends what is queued and stops.
func (a *Async) Close() {
	close(a.ch)
	a.wg.Wait()
}
