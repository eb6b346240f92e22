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
		lost:   `select seq_id from ` + events + ` where seq_id = any($1) order by seq_id`,
	}
}
