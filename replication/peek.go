package replication

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Peek reads up to limit pending changes of an inactive slot without
// consuming them (pg_logical_slot_peek_binary_changes) and hands each pgoutput
// message to fn, in stream order. It reports whether it stopped at the limit.
// It holds the slot while it reads: a starting stream meanwhile finds it
// active and retries.
func Peek(ctx context.Context, pool *pgxpool.Pool, cfg Config, limit int, fn func(data []byte) error) (truncated bool, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return false, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("peek slot %s: %w", cfg.Slot, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Values come as text in the session's DateStyle and TimeZone, the
	// same settings the stream uses.
	if _, err := tx.Exec(ctx, `SET LOCAL DateStyle = ISO; SET LOCAL TimeZone = 'UTC'`); err != nil {
		return false, fmt.Errorf("peek slot %s: %w", cfg.Slot, err)
	}
	rows, err := tx.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
    'proto_version', '1', 'publication_names', $3)`, cfg.Slot, limit, `"`+cfg.Publication+`"`)
	if err != nil {
		return false, fmt.Errorf("peek slot %s: %w", cfg.Slot, err)
	}
	defer rows.Close()
	n := 0
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
		n++
		return fn(data)
	})
	if err != nil {
		return false, fmt.Errorf("peek slot %s: %w", cfg.Slot, err)
	}
	// upto_nchanges stops after the transaction that reaches the limit.
	return n >= limit, nil
}
