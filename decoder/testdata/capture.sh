#!/usr/bin/env bash
# capture.sh regenerates the golden pgoutput captures in this directory from a
# running PostgreSQL (wal_level=logical, superuser "postgres"). See README.md.
#
#   PGHOST=/tmp/pgsock PGPORT=54329 ./capture.sh [marten-fixture-dir]
#
# It creates the databases marten8, helpdesk, archived and conjoined (dropping
# them first), one publication "pub" and one pgoutput slot "cdc_<database>" in each,
# replays Marten appends, and writes one *.hex file per capture.
set -euo pipefail
: "${PGHOST:?set PGHOST}" "${PGPORT:?set PGPORT}"
here=$(cd "$(dirname "$0")" && pwd)
fixtures=${1:-/work/shared/marten}
export PGUSER=postgres
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

fresh_db() {
	psql -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$1'" >/dev/null
	psql -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
}

start_slot() { # db publication-ddl
	psql -d "$1" -c "$2" -c "SELECT pg_create_logical_replication_slot('cdc_$1', 'pgoutput')" >/dev/null
}

capture() { # db file timezone comment
	{
		echo "# $4"
		echo "# captured from $(psql -d "$1" -At -c 'SELECT version()' | cut -d' ' -f1,2), database $1, TimeZone $3:"
		echo "#   SELECT lsn, xid, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('cdc_$1', NULL, NULL,"
		echo "#     'proto_version', '1', 'publication_names', 'pub')"
		echo "# columns: lsn xid message-hex (one pgoutput message per line)"
		psql -d "$1" -At -F ' ' -c "SET DateStyle = ISO" -c "SET TimeZone = '$3'" \
			-c "SELECT lsn, xid, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('cdc_$1', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')"
	} >"$here/$2"
}

# ---------------------------------------------------------------- marten8: default schema, then Marten 9 columns
fresh_db marten8
psql -d marten8 -f "$fixtures/schema.sql" >/dev/null
start_slot marten8 "CREATE PUBLICATION pub FOR TABLE public.mt_events WITH (publish = 'insert', publish_via_partition_root = true)"
# append.sql: quick appends (function), inline-nextval insert, rich mode, archiving (an UPDATE: not published)
psql -d marten8 -f "$fixtures/append.sql" >/dev/null
psql -d marten8 <<'SQL'
-- Tombstones: a Rich append failed after taking seq_ids 6 and 7; Marten fills the hole.
BEGIN;
INSERT INTO public.mt_streams (id, type, version, tenant_id)
VALUES ('00000000-0000-4000-8000-00000000dead', NULL, 2, '*DEFAULT*');
INSERT INTO public.mt_events (data, type, mt_dotnet_type, id, stream_id, version, timestamp, tenant_id, seq_id)
SELECT '{}', 'tombstone', 'Marten.Events.Tombstone, Marten', ('018f0000-0000-7000-8000-0000000000f' || n)::uuid,
       '00000000-0000-4000-8000-00000000dead', n, '2026-11-22T10:06:00+00:00', '*DEFAULT*',
       nextval('public.mt_events_sequence')
  FROM generate_series(1, 2) n;
COMMIT;
-- A rolled-back append: never in the stream.
BEGIN;
INSERT INTO public.mt_events (data, type, id, stream_id, version, timestamp, tenant_id, seq_id)
VALUES ('{"Rolled":"back"}', 'incident_logged', '018f0000-0000-7000-8000-0000000000ee',
        'a1b2c3d4-0000-4000-8000-000000000001', 99, now(), '*DEFAULT*', nextval('public.mt_events_sequence'));
ROLLBACK;
-- Upgrade to Marten 9 style columns: the next insert re-sends the Relation message.
ALTER TABLE public.mt_events ADD COLUMN bdata bytea NULL, ADD COLUMN user_name varchar NULL,
                             ADD COLUMN is_skipped boolean DEFAULT FALSE;
BEGIN;
INSERT INTO public.mt_events (data, bdata, type, mt_dotnet_type, id, stream_id, version, timestamp, tenant_id,
                              correlation_id, causation_id, headers, user_name, is_skipped, seq_id)
VALUES ('{"IncidentId":"b1b2c3d4-0000-4000-8000-000000000001","Note":"caf\u00e9 \"quoted\""}', '\x0102ff',
        'incident_note_added', 'Helpdesk.Api.Incidents.IncidentNoteAdded, Helpdesk.Api',
        '018f0000-0000-7000-8000-000000000021', 'b1b2c3d4-0000-4000-8000-000000000001', 3,
        '2026-11-22 15:30:00.5+05:30', '*DEFAULT*', 'corr-60', 'cmd-60', '{"source":"v9","attempt":1}', 'alice', FALSE,
        nextval('public.mt_events_sequence')),
       ('{"IncidentId":"b1b2c3d4-0000-4000-8000-000000000001","Poison":true}', NULL,
        'incident_poison', 'Helpdesk.Api.Incidents.IncidentPoison, Helpdesk.Api',
        '018f0000-0000-7000-8000-000000000022', 'b1b2c3d4-0000-4000-8000-000000000001', 4,
        '2026-11-22T10:10:00-03:00', '*DEFAULT*', NULL, NULL, NULL, NULL, TRUE,
        nextval('public.mt_events_sequence')),
       ('{"IncidentId":"b1b2c3d4-0000-4000-8000-000000000001","Status":"Resolved"}', NULL,
        'incident_resolved', 'Helpdesk.Api.Incidents.IncidentResolved, Helpdesk.Api',
        '018f0000-0000-7000-8000-000000000023', 'b1b2c3d4-0000-4000-8000-000000000001', 5,
        '2026-11-22T10:11:12Z', '*DEFAULT*', NULL, NULL, NULL, NULL, NULL,
        nextval('public.mt_events_sequence'));
UPDATE public.mt_streams SET version = 5 WHERE id = 'b1b2c3d4-0000-4000-8000-000000000001';
COMMIT;
SQL
capture marten8 marten8.hex UTC "schema.sql + append.sql, tombstones, a rollback, then ALTER TABLE adding bdata, user_name, is_skipped"
capture marten8 marten8_kolkata.hex Asia/Kolkata "the same changes as marten8.hex, decoded with TimeZone Asia/Kolkata"

# ---------------------------------------------------------------- helpdesk: string stream ids in a non-public schema
fresh_db helpdesk
psql -d helpdesk -c "CREATE SCHEMA helpdesk" >/dev/null
sed 's/public\./helpdesk./g' "$fixtures/schema_string_ids.sql" | psql -d helpdesk >/dev/null
# a decoy mt_events in public: same name, other schema, not the target
psql -d helpdesk -f "$fixtures/schema.sql" >/dev/null
start_slot helpdesk "CREATE PUBLICATION pub FOR TABLE helpdesk.mt_events, helpdesk.mt_streams, public.mt_events WITH (publish_via_partition_root = true)"
psql -d helpdesk >/dev/null <<'SQL'
SELECT helpdesk.mt_quick_append_events('incident-42', 'incident', '*DEFAULT*',
    ARRAY['018f0000-0000-7000-8000-000000000031', '018f0000-0000-7000-8000-000000000032']::uuid[],
    ARRAY['incident_logged', 'incident_categorised']::varchar[],
    ARRAY['Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api',
          'Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api']::varchar[],
    ARRAY['{"IncidentId":"incident-42","Description":"Screen flickers"}',
          '{"IncidentId":"incident-42","Category":1}']::jsonb[],
    ARRAY[NULL, NULL]::varchar[], ARRAY['corr-70', 'corr-70']::varchar[], ARRAY[NULL, NULL]::jsonb[]);
BEGIN;
INSERT INTO public.mt_streams (id, type, version, tenant_id) VALUES ('d1b2c3d4-0000-4000-8000-000000000001', 'incident', 1, '*DEFAULT*');
INSERT INTO public.mt_events (data, type, id, stream_id, version, timestamp, tenant_id, seq_id)
VALUES ('{"Decoy":true}', 'incident_logged', '018f0000-0000-7000-8000-000000000041',
        'd1b2c3d4-0000-4000-8000-000000000001', 1, '2026-11-22T11:00:00Z', '*DEFAULT*', nextval('public.mt_events_sequence'));
INSERT INTO helpdesk.mt_events (data, type, mt_dotnet_type, id, stream_id, version, timestamp, tenant_id, seq_id)
VALUES ('{"IncidentId":"incident-42","Status":"Closed"}', 'incident_closed', 'Helpdesk.Api.Incidents.IncidentClosed, Helpdesk.Api',
        '018f0000-0000-7000-8000-000000000033', 'incident-42', 3, '2026-11-22T11:00:00.000001Z', '*DEFAULT*',
        nextval('helpdesk.mt_events_sequence'));
UPDATE helpdesk.mt_streams SET version = 3 WHERE id = 'incident-42';
COMMIT;
SELECT helpdesk.mt_archive_stream('incident-42');
DELETE FROM helpdesk.mt_events WHERE id = '018f0000-0000-7000-8000-000000000031';
TRUNCATE helpdesk.mt_streams CASCADE;
SQL
capture helpdesk helpdesk.hex UTC "string stream ids in schema helpdesk; publication also has helpdesk.mt_streams and a decoy public.mt_events; updates, a delete, a truncate"

# ---------------------------------------------------------------- archived: archived-stream partitioning
fresh_db archived
psql -d archived -f "$fixtures/schema_archived_partitioned.sql" >/dev/null
start_slot archived "CREATE PUBLICATION pub FOR TABLE public.mt_events WITH (publish = 'insert', publish_via_partition_root = true)"
psql -d archived -f "$fixtures/append.sql" >/dev/null
psql -d archived -c "SELECT public.mt_archive_stream('a1b2c3d4-0000-4000-8000-000000000001'::uuid)" >/dev/null
capture archived archived.hex UTC "schema_archived_partitioned.sql + append.sql (archives stream ...0002), then archives stream ...0001"

# ---------------------------------------------------------------- conjoined: Marten 9 per-tenant partitioning (bdata column)
fresh_db conjoined
psql -d conjoined -f "$fixtures/schema_conjoined_partitioned.sql" >/dev/null
start_slot conjoined "CREATE PUBLICATION pub FOR TABLE public.mt_events WITH (publish = 'insert', publish_via_partition_root = true)"
psql -d conjoined -f "$fixtures/append_conjoined_partitioned.sql" >/dev/null 2>&1
capture conjoined conjoined.hex UTC "schema_conjoined_partitioned.sql + append_conjoined_partitioned.sql (Marten 9, seq_id per tenant)"
