package poller

// queries are the statements of one schema.
type queries struct {
	// detect is Marten's HighWaterStatisticsDetector and GapDetector in one
	// statement, so that every reading comes from one snapshot ($1: start).
	detect string
	// page reads one page of events ($1 after, $2 up to, $3 limit).
	page string
	// record upserts the 'HighWaterMark' progression row ($1: mark).
	record string
	// live counts the signs of a transaction that may fill a gap first
	// seen at $1 (server time) in schema $2 with snapshot xmax $3: Marten
	// 9's GapLivenessProbe without its allocation fence and advisory-lock
	// exclusions.
	live string
	// lost finds which of the seq_ids $1 are in mt_events.
	lost string
}

// newQueries returns the statements for schema, already quoted.
func newQueries(schema string) queries {
	events := schema + ".mt_events"
	return queries{
		detect: `select
  (select last_value from ` + schema + `.mt_events_sequence),
  transaction_timestamp(),
  pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
  (select min(seq_id) from ` + events + ` where seq_id > $1),
  (select seq_id
     from (select seq_id, lead(seq_id) over (order by seq_id) as next_seq
             from ` + events + ` where seq_id >= $1) gaps
    where next_seq is not null and next_seq - seq_id > 1
    order by seq_id
    limit 1),
  (select max(seq_id) from ` + events + ` where seq_id >= $1)`,
		page: `select seq_id, id::text from ` + events + `
 where seq_id > $1 and seq_id <= $2
 order by seq_id
 limit $3`,
		record: `select ` + schema + `.mt_mark_event_progression('HighWaterMark', $1)`,
		live: `select
  (select count(*)
     from pg_locks l
     join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'relation'
      and l.granted
      and l.mode = 'RowExclusiveLock'
      and l.pid <> pg_backend_pid()
      and l.database = (select d.oid from pg_database d where d.datname = current_database())
      and a.xact_start <= $1
      and l.relation in (select c.oid
                           from pg_class c
                           join pg_namespace n on n.oid = c.relnamespace
                          where n.nspname = $2
                            and c.relname like 'mt_events%'
                            and c.relkind in ('r', 'p')))
+ (select count(*)
     from pg_stat_activity a
    where a.datname = current_database()
      and a.pid <> pg_backend_pid()
      and a.backend_type = 'client backend'
      and a.xact_start is not null
      and a.xact_start <= $1)
+ (select count(*)
     from pg_snapshot_xip(pg_current_snapshot()) as xip(xid)
    where xip.xid::text::bigint < $3)`,
		lost: `select seq_id from ` + events + ` where seq_id = any($1) order by seq_id`,
	}
}
