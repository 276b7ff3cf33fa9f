package notify

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a minimal SMTP server on 127.0.0.1 for tests: it speaks
// EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP and QUIT, and records
// every accepted message.
type smtpServer struct {
	addr     string
	auth     bool   // advertise AUTH PLAIN
	user     string // credentials AUTH accepts
	password string

	mu    sync.Mutex
	msgs  []smtpMessage
	auths []string // "user:password" of every AUTH attempt
	conns int
}

// smtpMessage is one message the server accepted.
type smtpMessage struct {
	From string
	To   []string
	Data string
}

func newSMTPServer(tb testing.TB, auth bool, user, password string) *smtpServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &smtpServer{addr: ln.Addr().String(), auth: auth, user: user, password: password}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(conn) })
		}
	})
	return s
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	reply("220 localhost ESMTP test")
	var cur smtpMessage
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			if s.auth {
				reply("250-localhost\r\n250-8BITMIME\r\n250 AUTH PLAIN")
			} else {
				reply("250-localhost\r\n250 8BITMIME")
			}
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !s.auth || !strings.EqualFold(mech, "PLAIN") {
				reply("504 5.5.4 mechanism not supported")
				continue
			}
			if resp == "" {
				reply("334 ")
				if resp, err = tp.ReadLine(); err != nil {
					return
				}
			}
			raw, _ := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if len(parts) != 3 {
				reply("501 5.5.2 bad AUTH PLAIN")
				continue
			}
			s.mu.Lock()
			s.auths = append(s.auths, parts[1]+":"+parts[2])
			s.mu.Unlock()
			if parts[1] == s.user && parts[2] == s.password {
				reply("235 2.7.0 authenticated")
			} else {
				reply("535 5.7.8 authentication failed")
			}
		case "MAIL":
			cur = smtpMessage{From: angle(arg)}
			reply("250 2.1.0 ok")
		case "RCPT":
			cur.To = append(cur.To, angle(arg))
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 go ahead")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			cur.Data = string(data)
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			reply("250 2.0.0 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 5.5.2 unknown command")
		}
	}
}

// angle returns the path between < and > in a MAIL or RCPT argument.
func angle(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	path, _, _ := strings.Cut(rest, ">")
	return path
}

// stats returns the AUTH attempts and the connection count.
func (s *smtpServer) stats() (auths []string, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...), s.conns
}

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

// checkMessage parses m and checks its envelope, headers and body.
func checkMessage(tb testing.TB, m smtpMessage, ev Event) {
	tb.Helper()
	if m.From != "bk@example.com" || strings.Join(m.To, ",") != "ops@example.com,dba@example.com" {
		tb.Errorf("envelope from %q to %q", m.From, m.To)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		tb.Fatalf("parse message: %v\n%s", err, m.Data)
	}
	h := msg.Header
	if got, want := h.Get("Subject"), "bk: nightly failure on db1"; got != want {
		tb.Errorf("Subject %q, want %q", got, want)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" || to[1].Address != "dba@example.com" || to[1].Name != "DBA Team" {
		tb.Errorf("To %q: %v", h.Get("To"), err)
	}
	if from, err := h.AddressList("From"); err != nil || from[0].Address != "bk@example.com" {
		tb.Errorf("From %q: %v", h.Get("From"), err)
	}
	if _, err := h.Date(); err != nil {
		tb.Errorf("Date: %v", err)
	}
	if got := h.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		tb.Errorf("Content-Type %q", got)
	}
	body, _ := io.ReadAll(msg.Body)
	// The wire has CRLF line ends; the summary has LF.
	if got, want := strings.ReplaceAll(string(body), "\r\n", "\n"), Summary(ev); got != want {
		tb.Errorf("body:\n%s\nwant:\n%s", got, want)
	}
}

func testEmail(addr string) *Email {
	return &Email{SMTP: addr, From: "bk <bk@example.com>", To: []string{"ops@example.com", "DBA Team <dba@example.com>"}}
}

func TestEmailNoAuth(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newSMTPServer(t, false, "", "")
	ev := testEvent(StatusFailure)
	if err := n.Send(context.Background(), Targets{Email: testEmail(srv.addr)}, ev); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	checkMessage(t, msgs[0], ev)
	if auths, _ := srv.stats(); len(auths) != 0 {
		t.Errorf("AUTH sent without a username: %q", auths)
	}
}

func TestEmailAuth(t *testing.T) {
	n, logs := newTestNotifier(t)
	const password = "s3cret-Pa55"
	srv := newSMTPServer(t, true, "bkuser", password)
	e := testEmail(srv.addr)
	e.Username, e.Password = "bkuser", password
	e.StartTLS = true // not offered by the server: sent in the clear, with a warning
	ev := testEvent(StatusFailure)
	if err := n.Send(context.Background(), Targets{Email: e}, ev); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	checkMessage(t, msgs[0], ev)
	if auths, _ := srv.stats(); strings.Join(auths, ",") != "bkuser:"+password {
		t.Errorf("AUTH attempts %q", auths)
	}
	if !strings.Contains(logs.String(), "STARTTLS") {
		t.Errorf("missing STARTTLS not logged:\n%s", logs)
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("log holds the password:\n%s", logs)
	}
}

func TestEmailAuthRejected(t *testing.T) {
	n, logs := newTestNotifier(t)
	const password = "wrong-Pa55"
	srv := newSMTPServer(t, true, "bkuser", "right")
	e := testEmail(srv.addr)
	e.Username, e.Password = "bkuser", password
	err := n.Send(context.Background(), Targets{Email: e}, testEvent(StatusFailure))
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "535") || !strings.Contains(err.Error(), "after 1 attempt") {
		t.Errorf("error %q: want a 535, not retried", err)
	}
	if strings.Contains(err.Error(), password) || strings.Contains(logs.String(), password) {
		t.Errorf("password leaked: %q\n%s", err, logs)
	}
	if len(srv.messages()) != 0 {
		t.Error("message accepted")
	}
}

func TestEmailAuthNotOffered(t *testing.T) {
	n, _ := newTestNotifier(t)
	srv := newSMTPServer(t, false, "", "")
	e := testEmail(srv.addr)
	e.Username, e.Password = "bkuser", "pw"
	err := n.Send(context.Background(), Targets{Email: e}, testEvent(StatusFailure))
	if err == nil || !strings.Contains(err.Error(), "no AUTH") {
		t.Errorf("got %v", err)
	}
	if _, conns := srv.stats(); conns != 1 {
		t.Errorf("%d connections, want 1 (not retried)", conns)
	}
}

func TestEmailBadAddress(t *testing.T) {
	n, _ := newTestNotifier(t)
	for _, e := range []*Email{
		{SMTP: "127.0.0.1:1", From: "not an address", To: []string{"a@example.com"}},
		{SMTP: "127.0.0.1:1", From: "bk@example.com", To: []string{"a@example.com\r\nBcc: x@example.com"}},
		{SMTP: "127.0.0.1:1", From: "bk@example.com"},
		{SMTP: "no-port", From: "bk@example.com", To: []string{"a@example.com"}},
	} {
		err := n.Send(context.Background(), Targets{Email: e}, testEvent(StatusFailure))
		if err == nil {
			t.Errorf("%+v: no error", e)
		}
	}
}

// TestEmailHanging checks the per-attempt timeout against a server that
// accepts connections and never greets.
func TestEmailHanging(t *testing.T) {
	n, _ := newTestNotifier(t)
	n.AttemptTimeout = 100 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(c)) }()
		}
	}()
	defer func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	err = n.Send(context.Background(), Targets{Email: testEmail(ln.Addr().String())}, testEvent(StatusFailure))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("got %v", err)
	}
}
