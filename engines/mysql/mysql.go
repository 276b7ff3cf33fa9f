package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bk-backup/bk/engines"
	"github.com/bk-backup/bk/engines/internal/proc"
)

// DefaultPort is the port used when the URL names none.
const DefaultPort = 3306

// trailer is the line mariadb-dump and mysqldump write after everything else.
const trailer = "-- Dump completed"

// tailBytes is how much of the end of the stream is kept to find the trailer.
const tailBytes = 4096

// Sentinel errors, checked with errors.Is.
var (
	// ErrIncomplete means the dump stream lacks its completion trailer.
	ErrIncomplete = errors.New("mariadb-dump output is incomplete")
	// ErrEmpty means the dump tool wrote nothing.
	ErrEmpty = errors.New("mariadb-dump wrote no output")
	// ErrNotEmpty means a restore target already holds objects.
	ErrNotEmpty = errors.New("restore target is not empty")
	// ErrNoDatabase means the database named by the URL does not exist.
	ErrNoDatabase = errors.New("database does not exist")
)

// Options configures an Engine.
type Options struct {
	// PasswordFile holds the password (one trailing newline is ignored). It
	// must not be readable by group or others.
	PasswordFile string
	// Env is the environment MYSQL_PWD and HOME are looked up in and that the
	// children inherit (minus MYSQL_PWD); nil means bk's own.
	Env []string
}

// Engine dumps and restores one MariaDB/MySQL database, or all of them.
type Engine struct {
	scheme   string
	user     string
	host     string
	port     int
	database string // "" means all databases
	opts     Options
}

var (
	_ engines.Engine   = (*Engine)(nil)
	_ engines.Restorer = (*Engine)(nil)
)

// New parses mysql://[user@]host[:port]/dbname (or mariadb://..., or /* for
// all databases). The URL must not carry a password; errors never repeat the
// URL, which might.
func New(rawURL string, opts Options) (*Engine, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid mysql URL: %v", err)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, fmt.Errorf("invalid mysql URL: scheme %q is not mysql or mariadb", u.Scheme)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, errors.New("invalid mysql URL: it carries a password; use a password file, ~/.my.cnf or MYSQL_PWD instead")
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("invalid mysql URL: query strings and fragments are not supported")
	}
	e := &Engine{scheme: u.Scheme, host: u.Hostname(), port: DefaultPort, opts: opts}
	if u.User != nil {
		e.user = u.User.Username()
	}
	if e.host == "" {
		return nil, errors.New("invalid mysql URL: no host")
	}
	if p := u.Port(); p != "" {
		e.port, err = strconv.Atoi(p)
		if err != nil || e.port <= 0 || e.port > 65535 {
			return nil, fmt.Errorf("invalid mysql URL: bad port %q", p)
		}
	}
	db := strings.TrimPrefix(u.Path, "/")
	switch {
	case db == "":
		return nil, errors.New("invalid mysql URL: no database (use /* for all databases)")
	case db == "*":
	case strings.ContainsAny(db, "/\x00") || strings.HasPrefix(db, "-"):
		return nil, fmt.Errorf("invalid mysql URL: bad database name %q", db)
	default:
		e.database = db
	}
	return e, nil
}

// Name returns "mysql".
func (e *Engine) Name() string { return "mysql" }

// Source returns the URL without any secret.
func (e *Engine) Source() string {
	u := url.URL{Scheme: e.scheme, Host: net.JoinHostPort(e.host, strconv.Itoa(e.port))}
	if e.user != "" {
		u.User = url.User(e.user)
	}
	if e.database == "" {
		return u.String() + "/*"
	}
	u.Path = "/" + e.database
	return u.String()
}

// Dump streams the dump to w and returns its manifest once the dump is proven
// complete: exit status 0, no error line on stderr ("mariadb-dump: Error
// ..."), a non-empty stream and the trailer as its last line.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	tool, err := lookTool("mariadb-dump", "mysqldump")
	if err != nil {
		return nil, err
	}
	s, err := e.session()
	if err != nil {
		return nil, err
	}
	defer s.close()

	m := &engines.Manifest{Engine: e.Name(), Tool: filepath.Base(tool), Database: e.database}
	if e.database == "" {
		m.Database = "*"
	}
	if m.ServerVersion, err = e.serverVersion(ctx, s); err != nil {
		return nil, err
	}
	m.ToolVersion, err = toolVersion(ctx, tool)
	if err != nil {
		m.Warnings = append(m.Warnings, err.Error())
	}
	if e.database != "" {
		if err := e.requireDatabase(ctx, s); err != nil {
			return nil, err
		}
	}
	if m.Tables, err = e.tableRows(ctx, s); err != nil {
		return nil, err
	}

	args := append(e.connArgs(s),
		"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob",
		// Without the date the trailer is the same every night.
		"--skip-dump-date")
	if e.database == "" {
		args = append(args, "--all-databases")
	} else {
		args = append(args, e.database)
	}
	tail := &byteTail{max: tailBytes}
	n, err := e.run(ctx, tool, args, nil, io.MultiWriter(w, tail), dumpFailure)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", e.Source(), err)
	}
	if n == 0 {
		return nil, fmt.Errorf("dump %s: %w", e.Source(), ErrEmpty)
	}
	if err := checkTrailer(tail.bytes()); err != nil {
		return nil, fmt.Errorf("dump %s: %w", e.Source(), err)
	}
	return m, nil
}

// Restore loads r into the database named by the URL, creating it when
// missing. It refuses a non-empty target unless force, and stops at the first
// SQL error.
func (e *Engine) Restore(ctx context.Context, r io.Reader, force bool) error {
	client, err := lookTool("mariadb", "mysql")
	if err != nil {
		return err
	}
	s, err := e.session()
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := e.serverVersion(ctx, s); err != nil {
		return err
	}
	if e.database != "" {
		if _, err := e.query(ctx, s, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(e.database)); err != nil {
			return fmt.Errorf("create database %s: %w", e.Source(), err)
		}
	}
	if !force {
		n, err := e.objectCount(ctx, s)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("restore into %s: %w (%d objects); use force to load anyway", e.Source(), ErrNotEmpty, n)
		}
	}
	args := append(e.connArgs(s), "--batch", "--binary-mode")
	if e.database != "" {
		args = append(args, e.database)
	}
	if _, err := e.run(ctx, client, args, r, io.Discard, nil); err != nil {
		return fmt.Errorf("restore into %s stopped: %w", e.Source(), err)
	}
	return nil
}

// checkTrailer reports whether the last non-empty line of tail is the dump
// tool's completion line.
func checkTrailer(tail []byte) error {
	tail = bytes.TrimRight(tail, " \t\r\n")
	if len(tail) == 0 {
		return ErrEmpty
	}
	last := tail
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		last = tail[i+1:]
	}
	if !bytes.HasPrefix(last, []byte(trailer)) {
		return fmt.Errorf("%w: the last line is not %q", ErrIncomplete, trailer)
	}
	return nil
}

// connArgs returns the client arguments, the option file first.
func (e *Engine) connArgs(s *session) []string {
	args := []string{"--defaults-extra-file=" + s.file, "-h", e.host, "-P", strconv.Itoa(e.port)}
	if e.host == "localhost" {
		// The client would use the socket; the URL names TCP.
		args = append(args, "--protocol=TCP")
	}
	if e.user != "" {
		args = append(args, "-u", e.user)
	}
	return args
}

// serverVersion connects and returns SELECT VERSION().
func (e *Engine) serverVersion(ctx context.Context, s *session) (string, error) {
	lines, err := e.query(ctx, s, "SELECT VERSION()")
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", e.Source(), err)
	}
	if len(lines) != 1 {
		return "", fmt.Errorf("connect to %s: unexpected reply to SELECT VERSION()", e.Source())
	}
	return lines[0], nil
}

func (e *Engine) requireDatabase(ctx context.Context, s *session) error {
	lines, err := e.query(ctx, s, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+quoteString(e.database))
	if err != nil {
		return fmt.Errorf("look up database on %s: %w", e.Source(), err)
	}
	if len(lines) == 0 {
		return fmt.Errorf("dump %s: %w (or the user cannot see it)", e.Source(), ErrNoDatabase)
	}
	return nil
}

// systemSchemas are left out of /* row counts and emptiness checks.
const systemSchemas = "('information_schema','mysql','performance_schema','sys')"

func (e *Engine) schemaFilter() string {
	if e.database == "" {
		return "NOT IN " + systemSchemas
	}
	return "= " + quoteString(e.database)
}

func (e *Engine) tableRows(ctx context.Context, s *session) ([]engines.Table, error) {
	lines, err := e.query(ctx, s, "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES"+
		" WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA "+e.schemaFilter()+" ORDER BY TABLE_SCHEMA, TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("count rows on %s: %w", e.Source(), err)
	}
	var tables []engines.Table
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("count rows on %s: unexpected line %q", e.Source(), l)
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("count rows on %s: bad count %q", e.Source(), f[2])
		}
		name := f[1]
		if e.database == "" {
			name = f[0] + "." + f[1]
		}
		tables = append(tables, engines.Table{Name: name, Rows: n, Estimate: true})
	}
	return tables, nil
}

// objectCount counts tables, views, routines and events in the target.
func (e *Engine) objectCount(ctx context.Context, s *session) (int64, error) {
	f := e.schemaFilter()
	lines, err := e.query(ctx, s, "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA "+f+
		") + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA "+f+
		") + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA "+f+")")
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", e.Source(), err)
	}
	if len(lines) != 1 {
		return 0, fmt.Errorf("inspect %s: unexpected reply", e.Source())
	}
	return strconv.ParseInt(lines[0], 10, 64)
}

// query runs sql through the client (on stdin, not argv) and returns the
// result lines, tab-separated, without column names.
func (e *Engine) query(ctx context.Context, s *session, sql string) ([]string, error) {
	client, err := lookTool("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	args := append(e.connArgs(s), "--batch", "--skip-column-names", "--raw")
	if _, err := e.run(ctx, client, args, strings.NewReader(sql), &out, nil); err != nil {
		return nil, err
	}
	text := strings.TrimRight(out.String(), "\n")
	if text == "" {
		return nil, nil
	}
	return strings.Split(text, "\n"), nil
}

// ExitError reports a client or dump tool that failed.
type ExitError = proc.ExitError

// StderrError reports a dump tool that exited 0 but wrote an error line to
// stderr.
type StderrError = proc.StderrError

// dumpFailure matches the stderr lines with which mysqldump and
// mariadb-dump report an error ("mysqldump: Error ...", "mariadb-dump: Got
// error: ...", "mysqldump: Couldn't execute ..."). A dump that printed one
// failed, whatever the exit status.
var dumpFailure = regexp.MustCompile(`^(mysqldump|mariadb-dump): (Error|Got error|Couldn't execute)`)

// run runs prog with args, stdin from in (nil: none) and stdout to out, and
// returns the bytes copied to out. A failure to write out kills the child.
// A stderr line matching failOn (nil: none) fails the run even when prog
// exits 0.
func (e *Engine) run(ctx context.Context, prog string, args []string, in io.Reader, out io.Writer, failOn *regexp.Regexp) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := proc.Command(ctx, prog, args, childEnv(e.env()), 5)
	if failOn != nil {
		ch.FailOn(failOn)
	}
	stdout, err := ch.Cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stdin io.WriteCloser
	if in != nil {
		if stdin, err = ch.Cmd.StdinPipe(); err != nil {
			return 0, err
		}
	}
	if err := ch.Start(); err != nil {
		return 0, err
	}
	readErr := make(chan error, 1)
	if in != nil {
		go func() {
			er := &errReader{r: in}
			// A write error means the child stopped reading; its exit
			// status says why. Only a failing input is this side's error.
			_, _ = io.Copy(stdin, er)
			_ = stdin.Close()
			if er.err != nil {
				cancel() // the input failed; do not load the rest of it
			}
			readErr <- er.err
		}()
	} else {
		readErr <- nil
	}
	n, copyErr := io.Copy(out, stdout)
	if copyErr != nil {
		cancel()
	}
	waitErr := ch.Wait()
	inErr := <-readErr
	switch {
	case inErr != nil:
		return n, fmt.Errorf("read input for %s: %w", filepath.Base(prog), inErr)
	case copyErr != nil:
		return n, copyErr
	}
	return n, waitErr
}

func (e *Engine) env() []string {
	if e.opts.Env != nil {
		return e.opts.Env
	}
	return os.Environ()
}

// childEnv is env without MYSQL_PWD, which bk passes through the option file.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MYSQL_PWD=") {
			out = append(out, kv)
		}
	}
	return out
}

func getenv(env []string, key string) (string, bool) {
	v, ok := "", false
	for _, kv := range env {
		if k, val, found := strings.Cut(kv, "="); found && k == key {
			v, ok = val, true
		}
	}
	return v, ok
}

func lookTool(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s found on PATH", strings.Join(names, ", "))
}

// toolVersion returns the first line of "tool --version".
func toolVersion(ctx context.Context, tool string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version failed: %v", filepath.Base(tool), err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// quoteString quotes s as an SQL string literal.
func quoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}

// quoteIdent quotes s as an identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// errReader remembers the error its reader returned, other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
