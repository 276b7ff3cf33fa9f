package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/engines"
)

const (
	// dialTimeout bounds connecting to the server.
	dialTimeout = 10 * time.Second
	// idleTimeout bounds the wait for the next byte from the server. While
	// it prepares the RDB the server sends a newline every second, so only
	// a stalled server or network reaches it.
	idleTimeout = 2 * time.Minute
	// eofMarkLen is the length of a diskless transfer's end mark.
	eofMarkLen = 40
)

// Dump streams an RDB snapshot of the whole server to w, taken over the
// replication protocol, and returns its manifest. The error is nil only
// when the stream had the advertised length (or ended with the diskless end
// mark) and passed the RDB check: magic, version, EOF opcode and CRC64.
// On error, part of the stream may have reached w; the caller records no
// snapshot. Errors wrap ErrInvalidRDB when the stream itself is bad.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	m, err := e.dump(ctx, w)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("redis: dump %s: %w", e.Source(), err)
	}
	return m, nil
}

func (e *Engine) dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", e.addr())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	c := newConn(nc, idleTimeout)

	if e.password != "" {
		args := []string{"AUTH", e.password}
		if e.user != "" {
			args = []string{"AUTH", e.user, e.password}
		}
		if _, err := c.do(args...); err != nil {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
	}
	m := &engines.Manifest{Engine: Name, Tool: "rdb"}
	info, err := c.do("INFO", "server")
	if err != nil {
		return nil, fmt.Errorf("INFO server: %w", err)
	}
	m.ServerVersion = infoField(info, "redis_version")
	if m.ServerVersion == "" {
		return nil, errors.New("INFO server gave no redis_version")
	}
	info, err = c.do("INFO", "keyspace")
	if err != nil {
		return nil, fmt.Errorf("INFO keyspace: %w", err)
	}
	if m.Tables, err = parseKeyspace(info); err != nil {
		return nil, err
	}

	// rdb-only (Redis 7.0+) tells the server that this replica wants the
	// snapshot and no command stream; older servers refuse it, which is
	// harmless. capa eof lets the server stream the RDB straight from its
	// fork (diskless) instead of writing a file into its dir first.
	for _, args := range [][]string{{"REPLCONF", "rdb-only", "1"}, {"REPLCONF", "capa", "eof"}} {
		if _, err := c.do(args...); err != nil {
			var se serverError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
			}
		}
	}
	if err := c.send("PSYNC", "?", "-1"); err != nil {
		return nil, fmt.Errorf("PSYNC: %w", err)
	}
	size, mark, err := c.syncHeader()
	if err != nil {
		return nil, err
	}

	var check rdbCheck
	keys := startKeyCount()
	dst := io.MultiWriter(&check, keys, errWriter{w})
	if mark != nil {
		_, err = copyUntilMark(dst, c.r, mark)
	} else {
		var n int64
		n, err = io.CopyN(dst, c.r, size)
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: the server sent %d of %d bytes", ErrInvalidRDB, n, size)
		}
	}
	ks, warnings, kerr := keys.finish(err)
	if err != nil {
		return nil, fmt.Errorf("receive RDB: %w", err)
	}
	off, err := check.check()
	if err != nil {
		return nil, err
	}
	if kerr != nil {
		m.Warnings = append(m.Warnings, fmt.Sprintf("the RDB's keys could not be counted (%v); the manifest has only the INFO keyspace estimates", kerr))
	} else {
		m.Keyspace = ks
		m.Warnings = append(m.Warnings, warnings...)
	}
	m.ToolVersion = strconv.Itoa(check.version)
	if off {
		m.Warnings = append(m.Warnings, "the server writes RDB files without a checksum (rdbchecksum no), so the snapshot's content could not be verified; set rdbchecksum yes")
	}
	return m, nil
}

// syncHeader reads the answer to PSYNC up to the start of the payload. It
// returns the payload's size, or the end mark of a diskless transfer.
func (c *conn) syncHeader() (size int64, mark []byte, err error) {
	var s string
	for s == "" {
		// The server may send keepalive newlines before its reply too.
		if s, err = c.line(); err != nil {
			return 0, nil, fmt.Errorf("PSYNC: %w", err)
		}
	}
	switch {
	case strings.HasPrefix(s, "-"):
		return 0, nil, fmt.Errorf("PSYNC: %w", serverError(s[1:]))
	case strings.HasPrefix(s, "+FULLRESYNC"):
	default:
		return 0, nil, fmt.Errorf("PSYNC: unexpected reply %q", truncate(s, 40))
	}
	for {
		s, err := c.line()
		if err != nil {
			return 0, nil, fmt.Errorf("wait for the RDB: %w", err)
		}
		switch {
		case s == "":
			continue // keepalive while the server prepares the RDB
		case strings.HasPrefix(s, "-"):
			return 0, nil, fmt.Errorf("wait for the RDB: %w", serverError(s[1:]))
		case strings.HasPrefix(s, "$EOF:"):
			mark := []byte(s[len("$EOF:"):])
			if len(mark) != eofMarkLen {
				return 0, nil, fmt.Errorf("bad end mark length %d in the diskless header", len(mark))
			}
			return 0, mark, nil
		case strings.HasPrefix(s, "$"):
			n, err := strconv.ParseInt(s[1:], 10, 64)
			if err != nil || n < 0 {
				return 0, nil, fmt.Errorf("bad RDB length %q", truncate(s, 40))
			}
			return n, nil, nil
		default:
			return 0, nil, fmt.Errorf("unexpected line %q while waiting for the RDB", truncate(s, 40))
		}
	}
}

// keyCount runs scanKeyspace on its own goroutine over the bytes written
// to it. Writes never fail: once the scanner stops, early or at the EOF
// opcode, the rest of the stream is drained.
type keyCount struct {
	pw   *io.PipeWriter
	done chan keyCountResult
}

type keyCountResult struct {
	ks       *engines.Keyspace
	warnings []string
	err      error
}

func startKeyCount() *keyCount {
	pr, pw := io.Pipe()
	k := &keyCount{pw: pw, done: make(chan keyCountResult, 1)}
	go func() {
		ks, warnings, err := scanKeyspace(pr)
		_, _ = io.Copy(io.Discard, pr)
		k.done <- keyCountResult{ks, warnings, err}
	}()
	return k
}

func (k *keyCount) Write(p []byte) (int, error) {
	// The reader drains until the pipe is closed, so this returns only
	// after the scanner took p.
	return k.pw.Write(p)
}

// finish ends the stream (with cause when the transfer failed) and returns
// the scanner's result. It must be called exactly once.
func (k *keyCount) finish(cause error) (*engines.Keyspace, []string, error) {
	_ = k.pw.CloseWithError(cause)
	r := <-k.done
	return r.ks, r.warnings, r.err
}

// errWriter marks errors of the destination, so that they read as the
// consumer's failure and not the server's.
type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = fmt.Errorf("write dump: %w", err)
	}
	return n, err
}

// infoField returns the value of key in an INFO answer.
func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":"); ok && k == key {
			return v
		}
	}
	return ""
}

// parseKeyspace reads "db0:keys=12,expires=0,avg_ttl=0" lines of INFO
// keyspace into one Table per logical database. Counts are taken before the
// sync, so they are flagged as estimates.
func parseKeyspace(info string) ([]engines.Table, error) {
	var tables []engines.Table
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimRight(line, "\r")
		db, fields, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(db, "db") {
			continue
		}
		found := false
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "keys="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("INFO keyspace: bad key count in %q", line)
				}
				tables = append(tables, engines.Table{Name: db, Rows: n, Estimate: true})
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("INFO keyspace: no key count in %q", line)
		}
	}
	return tables, nil
}

// Keys returns the total key count of a manifest made by Dump: the exact
// count of its Keyspace, or else the sum of its INFO keyspace estimates.
func Keys(m *engines.Manifest) int64 {
	if m.Keyspace != nil {
		return m.Keyspace.Keys
	}
	var n int64
	for _, t := range m.Tables {
		n += t.Rows
	}
	return n
}
