package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/engines"
)

// Dump streams the database as a plain SQL dump to w and returns its
// manifest. The error is nil only when pg_dump exited 0, printed no error
// line ("pg_dump: error: ...") to stderr, and the stream is non-empty and
// ends with the completion trailer.
func (e *Engine) Dump(ctx context.Context, w io.Writer) (*engines.Manifest, error) {
	if e.All() {
		return nil, errors.New("postgres: postgres://host/* names every database: Expand it into one source per database")
	}
	m := &engines.Manifest{Engine: Name, Tool: "pg_dump", Database: e.database}
	toolVersion, err := e.toolVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	m.ToolVersion = toolVersion
	// Connecting first gives clear errors (no such database or role,
	// server down) before any byte is streamed.
	serverNum, serverVersion, err := e.serverVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %w", e.Source(), err)
	}
	m.ServerVersion = serverVersion
	if warn := versionWarning(toolVersion, serverNum, serverVersion); warn != "" {
		m.Warnings = append(m.Warnings, warn)
	}
	tables, err := e.tableEstimates(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: count rows in %s: %w", e.Source(), err)
	}
	m.Tables = tables
	if err := e.pgDump(ctx, w); err != nil {
		return nil, fmt.Errorf("postgres: dump %s: %w", e.Source(), err)
	}
	return m, nil
}

// pgDump runs pg_dump, copying its stdout to w through the trailer check.
func (e *Engine) pgDump(ctx context.Context, w io.Writer) error {
	env, cleanup, err := e.childEnv()
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := append([]string{"--format=plain"}, e.connArgs()...)
	args = append(args, "--", e.database)
	c := e.command(ctx, "pg_dump", args, env)
	c.FailOn(dumpFailure)
	stdout, err := c.Cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	var tc trailerCheck
	_, copyErr := io.Copy(io.MultiWriter(w, &tc), stdout)
	if copyErr != nil {
		cancel() // the consumer is gone; stop pg_dump
	}
	waitErr := c.Wait()
	switch {
	case copyErr != nil:
		return fmt.Errorf("write dump: %w", copyErr)
	case waitErr != nil:
		return waitErr
	}
	return tc.check()
}

// toolVersion returns pg_dump's version, e.g. "15.20".
func (e *Engine) toolVersion(ctx context.Context) (string, error) {
	env, cleanup, err := e.childEnv()
	if err != nil {
		return "", err
	}
	defer cleanup()
	out, err := e.command(ctx, "pg_dump", []string{"--version"}, env).Run(nil)
	if err != nil {
		return "", err
	}
	v := parseToolVersion(string(out))
	if v == "" {
		return "", fmt.Errorf("cannot read the version in pg_dump --version output %q", strings.TrimSpace(string(out)))
	}
	return v, nil
}

var toolVersionRE = regexp.MustCompile(`\(PostgreSQL\)\s+([0-9]+(?:\.[0-9]+)*)`)

// parseToolVersion reads "pg_dump (PostgreSQL) 15.20 (Debian ...)".
func parseToolVersion(s string) string {
	m := toolVersionRE.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// majorOfTool returns a version's major as server_version_num counts it:
// 15.20 → 150000, 9.6.24 → 90600.
func majorOfTool(v string) (int, bool) {
	parts := strings.Split(v, ".")
	x, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, false
	}
	if x >= 10 {
		return x * 10000, true
	}
	if len(parts) < 2 {
		return 0, false
	}
	y, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, false
	}
	return x*10000 + y*100, true
}

// majorOfServer rounds server_version_num down to its major version.
func majorOfServer(num int) int {
	if num >= 100000 {
		return num / 10000 * 10000
	}
	return num / 100 * 100
}

// versionWarning warns when pg_dump's major version is older than the
// server's: pg_dump refuses newer servers, and one that does not may miss
// objects.
func versionWarning(toolVersion string, serverNum int, serverVersion string) string {
	tool, ok := majorOfTool(toolVersion)
	if !ok || serverNum <= 0 || tool >= majorOfServer(serverNum) {
		return ""
	}
	return fmt.Sprintf("pg_dump %s is older than the server (%s); install the server's major version of pg_dump", toolVersion, serverVersion)
}

// serverVersion asks the server for server_version_num and server_version.
func (e *Engine) serverVersion(ctx context.Context) (int, string, error) {
	rows, err := e.psql(ctx, e.database, "SELECT current_setting('server_version_num'), current_setting('server_version');\n", nil)
	if err != nil {
		return 0, "", err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return 0, "", errors.New("unexpected answer to the server version query")
	}
	num, err := strconv.Atoi(rows[0][0])
	if err != nil {
		return 0, "", fmt.Errorf("bad server_version_num %q", rows[0][0])
	}
	return num, rows[0][1], nil
}

// tableEstimates returns the estimated live rows of each user table. They
// are statistics, not counts: an exact count(*) reads whole tables.
func (e *Engine) tableEstimates(ctx context.Context) ([]engines.Table, error) {
	rows, err := e.psql(ctx, e.database,
		"SELECT schemaname||'.'||relname, n_live_tup FROM pg_stat_user_tables ORDER BY 1;\n", nil)
	if err != nil {
		return nil, err
	}
	tables := make([]engines.Table, 0, len(rows))
	for _, r := range rows {
		if len(r) != 2 {
			return nil, errors.New("unexpected answer to the row count query")
		}
		n, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad row count %q for %s", r[1], r[0])
		}
		tables = append(tables, engines.Table{Name: r[0], Rows: n, Estimate: true})
	}
	return tables, nil
}
