package sqlite

import (
	"context"
	"fmt"

	"github.com/bk-backup/bk/engines"
)

// CountRows returns the exact row count of every ordinary table of the
// database file, ordered by name, as Dump's manifest counts them.
func (e *Engine) CountRows(ctx context.Context) ([]engines.Table, error) {
	_, tables, err := e.describe(ctx, e.path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count rows in %s: %w", e.path, err)
	}
	return tables, nil
}
