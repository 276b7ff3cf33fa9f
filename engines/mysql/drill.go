package mysql

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bk-backup/bk/engines"
)

// Database returns the database the engine's URL names ("" for every
// database).
func (e *Engine) Database() string { return e.database }

// Drop drops the engine's database if it exists. Restore drills use it to
// remove their scratch database.
func (e *Engine) Drop(ctx context.Context) error {
	if e.database == "" {
		return errors.New("mysql: refusing to drop every database")
	}
	s, err := e.session()
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := e.query(ctx, s, "DROP DATABASE IF EXISTS "+quoteIdent(e.database)); err != nil {
		return fmt.Errorf("mysql: drop %s: %w", e.Source(), err)
	}
	return nil
}

// CountRows returns the exact row count (COUNT(*)) of every base table,
// named as in the manifest and ordered by name. It reads every table.
func (e *Engine) CountRows(ctx context.Context) ([]engines.Table, error) {
	s, err := e.session()
	if err != nil {
		return nil, err
	}
	defer s.close()
	lines, err := e.query(ctx, s, "SELECT HEX(TABLE_SCHEMA), HEX(TABLE_NAME) FROM information_schema.TABLES"+
		" WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA "+e.schemaFilter()+" ORDER BY TABLE_SCHEMA, TABLE_NAME")
	if err != nil {
		return nil, fmt.Errorf("count rows on %s: %w", e.Source(), err)
	}
	if len(lines) == 0 {
		return nil, nil
	}
	tables := make([]engines.Table, len(lines))
	var q strings.Builder
	for i, l := range lines {
		hs, ht, ok := strings.Cut(l, "\t")
		schema, err1 := unhex(hs)
		table, err2 := unhex(ht)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("count rows on %s: unexpected line %q", e.Source(), l)
		}
		tables[i].Name = table
		if e.database == "" {
			tables[i].Name = schema + "." + table
		}
		fmt.Fprintf(&q, "SELECT COUNT(*) FROM %s.%s;\n", quoteIdent(schema), quoteIdent(table))
	}
	counts, err := e.query(ctx, s, q.String())
	if err != nil {
		return nil, fmt.Errorf("count rows on %s: %w", e.Source(), err)
	}
	if len(counts) != len(tables) {
		return nil, fmt.Errorf("count rows on %s: %d counts for %d tables", e.Source(), len(counts), len(tables))
	}
	for i, c := range counts {
		if tables[i].Rows, err = strconv.ParseInt(strings.TrimSpace(c), 10, 64); err != nil {
			return nil, fmt.Errorf("count rows on %s: bad count %q for %s", e.Source(), c, tables[i].Name)
		}
	}
	return tables, nil
}

func unhex(h string) (string, error) {
	b, err := hex.DecodeString(h)
	return string(b), err
}
