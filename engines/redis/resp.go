package redis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxReply bounds a bulk reply read into memory (INFO answers); the RDB
// payload is never read through readReply.
const maxReply = 16 << 20

// serverError is an error reply ("-ERR ...", "-NOAUTH ...") from the server.
type serverError string

func (e serverError) Error() string { return "server replied: " + string(e) }

// conn is a minimal RESP2 client connection. Every read waits at most
// idleTimeout for the next byte.
type conn struct {
	nc          net.Conn
	r           *bufio.Reader
	idleTimeout time.Duration
}

func newConn(nc net.Conn, idle time.Duration) *conn {
	c := &conn{nc: nc, idleTimeout: idle}
	c.r = bufio.NewReaderSize(deadlineReader{c}, 64<<10)
	return c
}

// deadlineReader renews the read deadline before each read.
type deadlineReader struct{ c *conn }

func (d deadlineReader) Read(p []byte) (int, error) {
	if err := d.c.nc.SetReadDeadline(time.Now().Add(d.c.idleTimeout)); err != nil {
		return 0, err
	}
	return d.c.nc.Read(p)
}

// send writes one command as a RESP array of bulk strings.
func (c *conn) send(args ...string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.idleTimeout)); err != nil {
		return err
	}
	_, err := io.WriteString(c.nc, b.String())
	return err
}

// line reads one line without its "\r\n" (or lone "\n").
func (c *conn) line() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r"), nil
}

// reply reads one simple-string, integer or bulk reply as a string. An error
// reply is returned as a serverError; a null bulk as "".
func (c *conn) reply() (string, error) {
	s, err := c.line()
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", errors.New("empty reply line")
	}
	switch s[0] {
	case '+', ':':
		return s[1:], nil
	case '-':
		return "", serverError(s[1:])
	case '$':
		n, err := strconv.Atoi(s[1:])
		if err != nil || n < -1 || n > maxReply {
			return "", fmt.Errorf("bad bulk length %q", s)
		}
		if n == -1 {
			return "", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if string(b[n:]) != "\r\n" {
			return "", errors.New("bulk reply not terminated by CRLF")
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", truncate(s, 40))
}

// do sends a command and reads its reply.
func (c *conn) do(args ...string) (string, error) {
	if err := c.send(args...); err != nil {
		return "", err
	}
	return c.reply()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
