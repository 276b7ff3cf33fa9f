package sqlite

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/engines"
)

// busyTimeoutMillis is how long the copy waits for a writer's lock.
const busyTimeoutMillis = 60000

// Dump copies the database with VACUUM INTO into a private temporary file,
// checks the copy with PRAGMA integrity_check, counts its rows, and streams
// the copy to w. The error is nil only when all of that succeeded. The
// temporary directory is removed on every outcome.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	if err := checkSource(e.path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	m := &engines.Manifest{Engine: Name, Tool: "sqlite3", Database: e.path}
	v, err := e.toolVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	m.ToolVersion = v

	dir, err := os.MkdirTemp(e.tempDir, "bk-sqlite-*") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("sqlite: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "copy.db")
	if err := e.snapshot(ctx, cp); err != nil {
		return nil, fmt.Errorf("sqlite: copy %s: %w", e.path, err)
	}
	if err := e.verify(ctx, cp); err != nil {
		return nil, fmt.Errorf("sqlite: copy of %s: %w", e.path, err)
	}
	// The version and counts come from the copy, so they describe exactly
	// the bytes that are stored.
	m.ServerVersion, m.Tables, err = e.describe(ctx, cp)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count rows of %s: %w", e.path, err)
	}
	if err := streamFile(cp, w); err != nil {
		return nil, fmt.Errorf("sqlite: dump %s: %w", e.path, err)
	}
	return m, nil
}

// snapshot writes a consistent copy of the source to dst with VACUUM INTO.
// VACUUM INTO reads the source in one read transaction, so concurrent
// writers neither tear the copy nor make it restart, as they can make the
// step-wise backup API restart. dst is created empty with mode 0600 first;
// VACUUM INTO accepts an empty file.
func (e *Engine) snapshot(ctx context.Context, dst string) error {
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	script := fmt.Sprintf(".timeout %d\nVACUUM INTO %s;\n", busyTimeoutMillis, quoteLiteral(dst))
	_, err = e.sqlite3(ctx, fileURI(e.path, "rw"), script)
	var xe *ExitError
	if errors.As(err, &xe) && strings.Contains(strings.Join(xe.Stderr, " "), "malformed") {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// verify checks the SQLite header of path and that PRAGMA integrity_check
// prints exactly "ok".
func (e *Engine) verify(ctx context.Context, path string) error {
	if err := checkHeader(path); err != nil {
		return err
	}
	out, err := e.sqlite3(ctx, fileURI(path, "ro"), "PRAGMA integrity_check;\n")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if got := strings.TrimSpace(out); got != "ok" {
		lines := strings.Split(got, "\n")
		if len(lines) > tailLines {
			lines = append(lines[:tailLines], fmt.Sprintf("… (%d more lines)", len(lines)-tailLines))
		}
		return fmt.Errorf("%w: integrity_check says: %s", ErrCorrupt, strings.Join(lines, " | "))
	}
	return nil
}

// describe returns sqlite_version() and the exact row count of every
// ordinary table of the database at path, ordered by name. Virtual tables are
// left out (their module may be missing here); their shadow tables are
// counted. Names travel as hex, so any character in them is safe.
func (e *Engine) describe(ctx context.Context, path string) (string, []engines.Table, error) {
	uri := fileURI(path, "ro")
	out, err := e.sqlite3(ctx, uri, `SELECT sqlite_version();
SELECT hex(name) FROM sqlite_schema
 WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
   AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL %'
 ORDER BY name;
`)
	if err != nil {
		return "", nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	version := strings.TrimSpace(lines[0])
	if version == "" {
		return "", nil, fmt.Errorf("empty answer to sqlite_version()")
	}
	var names []string
	var q strings.Builder
	for _, h := range lines[1:] {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil {
			return "", nil, fmt.Errorf("bad table name %q: %w", h, err)
		}
		names = append(names, string(b))
		fmt.Fprintf(&q, "SELECT count(*) FROM %s;\n", quoteIdent(string(b)))
	}
	if len(names) == 0 {
		return version, nil, nil
	}
	out, err = e.sqlite3(ctx, uri, q.String())
	if err != nil {
		return "", nil, err
	}
	counts := strings.Fields(out)
	if len(counts) != len(names) {
		return "", nil, fmt.Errorf("%d row counts for %d tables", len(counts), len(names))
	}
	tables := make([]engines.Table, len(names))
	for i, name := range names {
		n, err := strconv.ParseInt(counts[i], 10, 64)
		if err != nil {
			return "", nil, fmt.Errorf("bad row count %q for %s", counts[i], name)
		}
		tables[i] = engines.Table{Name: name, Rows: n}
	}
	return version, tables, nil
}

// toolVersion returns the sqlite3 shell's version, e.g. "3.40.1".
func (e *Engine) toolVersion(ctx context.Context) (string, error) {
	out, err := e.command(ctx, "sqlite3", []string{"-version"}, e.env).Run(nil)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(out))
	if len(f) == 0 || !strings.HasPrefix(f[0], "3.") {
		return "", fmt.Errorf("cannot read the version in sqlite3 -version output %q", strings.TrimSpace(string(out)))
	}
	return f[0], nil
}

// streamFile copies the file at path to w and checks that every byte of it
// went out.
func streamFile(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	n, err := io.Copy(w, f)
	if err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	if n != fi.Size() || n == 0 {
		return fmt.Errorf("wrote %d bytes of a %d-byte copy", n, fi.Size())
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent quotes s as an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
