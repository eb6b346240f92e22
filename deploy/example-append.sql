-- Appends a few helpdesk events the way Marten does (mt_quick_append_events),
-- for trying cdc with docker-compose.yml:
--   docker compose exec postgres psql -U postgres -d helpdesk -f /example-append.sql
SELECT helpdesk.mt_quick_append_events(
    gen_random_uuid(), 'incident', '*DEFAULT*',
    ARRAY[gen_random_uuid(), gen_random_uuid()],
    ARRAY['incident_logged', 'incident_categorised']::varchar[],
    ARRAY['Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api',
          'Helpdesk.Api.Incidents.IncidentCategorised, Helpdesk.Api']::varchar[],
    ARRAY['{"Description":"Printer on fire","LoggedAt":"2026-11-22T10:00:00+00:00"}',
          '{"Category":2,"CategorisedAt":"2026-11-22T10:01:00+00:00"}']::jsonb[],
    ARRAY['cmd-1', 'cmd-1']::varchar[],
    ARRAY['corr-1', 'corr-1']::varchar[],
    ARRAY['{"source":"psql"}', '{"source":"psql"}']::jsonb[]);
