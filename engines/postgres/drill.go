package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/bk-backup/bk/engines"
)

// Database returns the database the engine's URL names ("*" for every
// database).
func (e *Engine) Database() string { return e.database }

// Drop drops the engine's database if it exists, ending its sessions first
// (DROP DATABASE ... WITH (FORCE), PostgreSQL 13 and later). Restore drills
// use it to remove their scratch database.
func (e *Engine) Drop(ctx context.Context) error {
	if e.All() {
		return errors.New("postgres: refusing to drop every database")
	}
	if _, err := e.psql(ctx, maintenanceDB, "DROP DATABASE IF EXISTS :\"db\" WITH (FORCE);\n",
		map[string]string{"db": e.database}); err != nil {
		return fmt.Errorf("postgres: drop %s: %w", e.Source(), err)
	}
	return nil
}

// CountRows returns the exact row count (count(*)) of every table the
// manifest's estimates cover (pg_stat_user_tables), named schema.table and
// ordered by name. It reads every table in full.
func (e *Engine) CountRows(ctx context.Context) ([]engines.Table, error) {
	rows, err := e.psql(ctx, e.database, `SELECT schemaname||'.'||relname,
 (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text
FROM pg_stat_user_tables ORDER BY 1;
`, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: count rows in %s: %w", e.Source(), err)
	}
	tables := make([]engines.Table, 0, len(rows))
	for _, r := range rows {
		if len(r) != 2 {
			return nil, errors.New("postgres: unexpected answer to the row count query")
		}
		n, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("postgres: bad row count %q for %s", r[1], r[0])
		}
		tables = append(tables, engines.Table{Name: r[0], Rows: n})
	}
	return tables, nil
}
