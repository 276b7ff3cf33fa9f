package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/bk-backup/bk/engines"
)

// Name is the engine's name in manifests.
const Name = "sqlite"

// header is the first 16 bytes of every SQLite 3 database file.
const header = "SQLite format 3\x00"

// ErrNotDatabase reports a file that does not start with the SQLite header.
var ErrNotDatabase = errors.New("not a SQLite 3 database")

// ErrCorrupt reports a database that failed PRAGMA integrity_check or that
// SQLite found malformed while copying it.
var ErrCorrupt = errors.New("database is corrupt")

// ErrExists reports a restore target that already exists.
var ErrExists = errors.New("target already exists")

// Options configure an Engine.
type Options struct {
	// BinDir is the directory holding sqlite3; "" searches PATH.
	BinDir string
	// Env is the environment of the children; nil means os.Environ().
	Env []string
	// TempDir is where Dump makes its private copy; "" means os.TempDir().
	// The copy is as large as the database after VACUUM.
	TempDir string
}

// Engine dumps and restores one SQLite database file.
type Engine struct {
	path    string // absolute and clean
	binDir  string
	env     []string
	tempDir string
}

var (
	_ engines.Engine   = (*Engine)(nil)
	_ engines.Restorer = (*Engine)(nil)
)

// New parses sqlite:///abs/path/to.db. The path must be absolute. New does
// not look at the file: Dump requires an existing SQLite database and Restore
// requires a missing target (unless forced), so the same URL serves both.
func New(rawURL string, opts Options) (*Engine, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sqlite: malformed URL: %w", err)
	}
	if u.Scheme != "sqlite" {
		return nil, fmt.Errorf("sqlite: URL scheme %q is not sqlite://", u.Scheme)
	}
	if u.Host != "" || u.User != nil {
		return nil, fmt.Errorf("sqlite: the URL must be sqlite:///abs/path (three slashes), not host %q", u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("sqlite: the URL must be sqlite:///abs/path with no query or fragment")
	}
	if u.Path == "" || !filepath.IsAbs(u.Path) {
		return nil, fmt.Errorf("sqlite: path %q is not absolute (sqlite:///abs/path/to.db)", u.Path)
	}
	p := filepath.Clean(u.Path)
	if p == "/" {
		return nil, errors.New("sqlite: the URL names no file")
	}
	e := &Engine{path: p, binDir: opts.BinDir, env: opts.Env, tempDir: opts.TempDir}
	if e.env == nil {
		e.env = os.Environ()
	}
	return e, nil
}

// Name returns "sqlite".
func (e *Engine) Name() string { return Name }

// Source returns sqlite:///abs/path.
func (e *Engine) Source() string {
	return (&url.URL{Scheme: Name, Path: e.path}).String()
}

// Path returns the database file's absolute path.
func (e *Engine) Path() string { return e.path }

// checkSource requires path to be an existing regular file with the SQLite
// header. It never creates anything.
func checkSource(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("database %s does not exist: %w", path, err)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return checkHeader(path)
}

// checkHeader reads the first 16 bytes of path and compares them with the
// SQLite header.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var b [len(header)]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: %w (shorter than the 16-byte header)", path, ErrNotDatabase)
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !bytes.Equal(b[:], []byte(header)) {
		return fmt.Errorf("%s: %w (header is %q)", path, ErrNotDatabase, b[:])
	}
	return nil
}

// fileURI is an SQLite URI filename for path with the given mode ("ro",
// "rw"). Neither mode creates a missing file. url.URL escapes '?', '#' and
// '%' in the path, as SQLite expects.
func fileURI(path, mode string) string {
	return (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=" + mode}).String()
}

// bin returns the path of program, inside BinDir when set.
func (e *Engine) bin(program string) string {
	if e.binDir == "" {
		return program
	}
	return filepath.Join(e.binDir, program)
}
