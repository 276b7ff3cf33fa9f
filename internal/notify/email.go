package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// email sends the summary of ev as plain-text mail, retried by the
// Notifier's policy. Errors never contain the password.
func (n *Notifier) email(ctx context.Context, e Email, ev Event) error {
	what := "email " + e.SMTP
	host, _, err := net.SplitHostPort(e.SMTP)
	if err != nil || host == "" {
		return fmt.Errorf("notify email: %w", permanent(fmt.Errorf("SMTP server %q: want host:port", e.SMTP)))
	}
	from, err := mail.ParseAddress(e.From)
	if err != nil {
		return fmt.Errorf("notify %s: %w", what, permanent(fmt.Errorf("from address %q: %w", e.From, err)))
	}
	if len(e.To) == 0 {
		return fmt.Errorf("notify %s: %w", what, permanent(errors.New("no recipients")))
	}
	to := make([]*mail.Address, len(e.To))
	for i, a := range e.To {
		if to[i], err = mail.ParseAddress(a); err != nil {
			return fmt.Errorf("notify %s: %w", what, permanent(fmt.Errorf("to address %q: %w", a, err)))
		}
	}
	msg := message(from, to, ev, time.Now())
	err = n.retry(ctx, what, func(ctx context.Context) error {
		return redactSecret(n.sendMail(ctx, e, host, from, to, msg), e.Password)
	})
	return redactSecret(err, e.Password)
}

// sendMail makes one attempt at delivering msg over a new connection. It
// ends when ctx does.
func (n *Notifier) sendMail(ctx context.Context, e Email, host string, from *mail.Address, to []*mail.Address, msg []byte) (err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.SMTP)
	if err != nil {
		return err
	}
	// net/smtp knows no contexts: bound every read and write by the
	// deadline and close the connection when ctx ends.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return smtpError("greeting", err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := c.Hello("localhost"); err != nil {
		return smtpError("EHLO", err)
	}
	if e.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
				return smtpError("STARTTLS", err)
			}
		} else {
			n.Log.Warn("SMTP server does not offer STARTTLS; sending in the clear", "server", e.SMTP)
		}
	}
	if e.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent(errors.New("SMTP server offers no AUTH, but a username is set"))
		}
		// PlainAuth refuses to send the password over a connection that
		// is neither TLS nor to localhost.
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return smtpError("AUTH PLAIN as "+e.Username, err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return smtpError("MAIL FROM", err)
	}
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return smtpError("RCPT TO "+a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpError("end of DATA", err)
	}
	// The message is accepted; a failed QUIT does not undo that.
	_ = c.Quit()
	_ = c.Close()
	return nil
}

// smtpError wraps err from step. A 5xx reply is permanent, as is the
// refusal of PlainAuth to send a password in the clear.
func smtpError(step string, err error) error {
	err = fmt.Errorf("%s: %w", step, err)
	if te, ok := errors.AsType[*textproto.Error](err); ok && te.Code >= 500 {
		return permanent(err)
	}
	if strings.Contains(err.Error(), "unencrypted connection") {
		return permanent(err)
	}
	return err
}

// message builds the mail: headers, a blank line and the summary, with
// "\n" line ends (the DATA writer turns them into CRLF and dot-stuffs).
func message(from *mail.Address, to []*mail.Address, ev Event, now time.Time) []byte {
	var b bytes.Buffer
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = a.String()
	}
	fmt.Fprintf(&b, "From: %s\n", from.String())
	fmt.Fprintf(&b, "To: %s\n", strings.Join(rcpts, ", "))
	fmt.Fprintf(&b, "Subject: %s\n", mime.QEncoding.Encode("utf-8", Title(ev)))
	fmt.Fprintf(&b, "Date: %s\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: %s\n", messageID(from.Address, now))
	b.WriteString("MIME-Version: 1.0\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\n")
	b.WriteString("Content-Transfer-Encoding: 8bit\n")
	b.WriteString("Auto-Submitted: auto-generated\n")
	b.WriteString("\n")
	b.WriteString(Summary(ev))
	return b.Bytes()
}

// messageID returns a unique Message-ID in the sender's domain.
func messageID(from string, now time.Time) string {
	domain := "bk.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<%d.%s@%s>", now.Unix(), hex.EncodeToString(r[:]), domain)
}

// redactSecret replaces any occurrence of secret in err's message, keeping
// it permanent if it was. It is a last guard, applied to every attempt's
// error before it is logged: no code path is meant to put the password in
// an error, but a server could echo it.
func redactSecret(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	red := errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
	if _, ok := errors.AsType[*permanentError](err); ok {
		return permanent(red)
	}
	return red
}
