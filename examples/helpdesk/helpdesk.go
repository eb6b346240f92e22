// Package helpdesk is an example of read models kept by cdc's postgres sink:
// those of Marten's Helpdesk sample (the events of the workload in
// internal/marten, NewHelpdesk: incident_logged, incident_categorised,
// incident_prioritised, agent_assigned_to_incident,
// agent_responded_to_incident, customer_responded_to_incident,
// incident_resolved, resolution_acknowledged_by_customer, incident_closed):
// the read models that the sample builds with Marten projections, as tables
// kept by SQL projections (DDL and Projections). Recompute, Read and Diff
// check them in tests and in the demo: Recompute builds them in Go from the
// events, as the sample's projections do, Read reads them back from the
// target database and Diff compares the two.
//
//   - incident_details (IncidentDetails, a single-stream projection): id,
//     customer_id, status, priority, category, agent_id, notes (a jsonb
//     array of {Type, From, Content, VisibleToCustomer}, FromAgent or
//     FromCustomer) and version (the stream version of the last event).
//   - incident_short_info (IncidentShortInfo): id, customer_id, status,
//     priority, category, notes_count and version.
//   - customer_incidents_summary (CustomerIncidentsSummary, a multi-stream
//     projection by customer): customer_id and the number of its incidents
//     pending, resolved, acknowledged and closed. Events after
//     incident_logged do not carry the customer: the statements find it in
//     incident_details, which the projections before them keep. As in the
//     sample, the counters follow the events of each incident in stream
//     order, with no constraint: events of a lifecycle appended out of
//     order (an acknowledgement before the resolution) make one go below
//     zero for a while.
//
// Statuses are the names of the sample's IncidentStatus (Pending, Resolved,
// ResolutionAcknowledgedByCustomer, Closed); category and priority the
// names of its enums, which the events carry as numbers. Notes are
// appended in event order (the sample's Union would also drop a note equal
// to an earlier one). The statements need no ON CONFLICT or version guards
// to be safe against re-delivery: the sink applies each event exactly once.
//
// deploy/cdc.yaml and deploy/postgres/02-read-models.sql are generated from
// this package (go test ./examples/helpdesk -run TestDeployInStep
// -update-deploy).
package helpdesk

// DDL creates the read-model tables; it may run more than once (CREATE TABLE
// IF NOT EXISTS). It holds several commands: run it without parameters
// (simple protocol), e.g. with pgxpool.Pool.Exec.
const DDL = `CREATE TABLE IF NOT EXISTS incident_details (
    id          uuid   PRIMARY KEY,
    customer_id uuid   NOT NULL,
    status      text   NOT NULL,
    priority    text,
    category    text,
    agent_id    uuid,
    notes       jsonb  NOT NULL DEFAULT '[]',
    version     bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_short_info (
    id          uuid   PRIMARY KEY,
    customer_id uuid   NOT NULL,
    status      text   NOT NULL,
    priority    text,
    category    text,
    notes_count int    NOT NULL DEFAULT 0,
    version     bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_incidents_summary (
    customer_id  uuid PRIMARY KEY,
    pending      int  NOT NULL DEFAULT 0,
    resolved     int  NOT NULL DEFAULT 0,
    acknowledged int  NOT NULL DEFAULT 0,
    closed       int  NOT NULL DEFAULT 0
);`

// Projection is one SQL projection, as a postgres sink's configuration
// writes it (projections[].name, on and sql) and as postgres.SQL takes it.
type Projection struct {
	Name string   // names the projection in errors
	On   []string // event-type globs
	SQL  []string // statements, with $name placeholders
}

// Projections returns the projections that keep the read models, in the
// order they must run.
func Projections() []Projection {
	return []Projection{
		{"incident_details.logged", []string{"incident_logged"}, []string{`INSERT INTO incident_details (id, customer_id, status, notes, version)
VALUES ($stream_id, ($data->>'CustomerId')::uuid, 'Pending', '[]', $version)`}},
		{"incident_details.categorised", []string{"incident_categorised"}, []string{`UPDATE incident_details
SET category = (ARRAY['Software', 'Hardware', 'Network', 'Database'])[($data->>'Category')::int + 1],
    version = $version
WHERE id = $stream_id`}},
		{"incident_details.prioritised", []string{"incident_prioritised"}, []string{`UPDATE incident_details
SET priority = (ARRAY['Critical', 'High', 'Medium', 'Low'])[($data->>'Priority')::int + 1],
    version = $version
WHERE id = $stream_id`}},
		{"incident_details.assigned", []string{"agent_assigned_to_incident"}, []string{`UPDATE incident_details SET agent_id = ($data->>'AgentId')::uuid, version = $version WHERE id = $stream_id`}},
		{"incident_details.agent_responded", []string{"agent_responded_to_incident"}, []string{`UPDATE incident_details
SET notes = notes || jsonb_build_array(jsonb_build_object(
        'Type', 'FromAgent',
        'From', $data->'Response'->'AgentId',
        'Content', $data->'Response'->'Content',
        'VisibleToCustomer', $data->'Response'->'VisibleToCustomer')),
    version = $version
WHERE id = $stream_id`}},
		{"incident_details.customer_responded", []string{"customer_responded_to_incident"}, []string{`UPDATE incident_details
SET notes = notes || jsonb_build_array(jsonb_build_object(
        'Type', 'FromCustomer',
        'From', $data->'Response'->'CustomerId',
        'Content', $data->'Response'->'Content',
        'VisibleToCustomer', true)),
    version = $version
WHERE id = $stream_id`}},
		{"incident_details.status", []string{"incident_resolved", "resolution_acknowledged_by_customer", "incident_closed"}, []string{`UPDATE incident_details
SET status = CASE $type
        WHEN 'incident_resolved' THEN 'Resolved'
        WHEN 'resolution_acknowledged_by_customer' THEN 'ResolutionAcknowledgedByCustomer'
        ELSE 'Closed'
    END,
    version = $version
WHERE id = $stream_id`}},

		{"incident_short_info.logged", []string{"incident_logged"}, []string{`INSERT INTO incident_short_info (id, customer_id, status, notes_count, version)
VALUES ($stream_id, ($data->>'CustomerId')::uuid, 'Pending', 0, $version)`}},
		{"incident_short_info.categorised", []string{"incident_categorised"}, []string{`UPDATE incident_short_info
SET category = (ARRAY['Software', 'Hardware', 'Network', 'Database'])[($data->>'Category')::int + 1],
    version = $version
WHERE id = $stream_id`}},
		{"incident_short_info.prioritised", []string{"incident_prioritised"}, []string{`UPDATE incident_short_info
SET priority = (ARRAY['Critical', 'High', 'Medium', 'Low'])[($data->>'Priority')::int + 1],
    version = $version
WHERE id = $stream_id`}},
		{"incident_short_info.assigned", []string{"agent_assigned_to_incident"}, []string{`UPDATE incident_short_info SET version = $version WHERE id = $stream_id`}},
		{"incident_short_info.responded", []string{"agent_responded_to_incident", "customer_responded_to_incident"}, []string{`UPDATE incident_short_info SET notes_count = notes_count + 1, version = $version WHERE id = $stream_id`}},
		{"incident_short_info.status", []string{"incident_resolved", "resolution_acknowledged_by_customer", "incident_closed"}, []string{`UPDATE incident_short_info
SET status = CASE $type
        WHEN 'incident_resolved' THEN 'Resolved'
        WHEN 'resolution_acknowledged_by_customer' THEN 'ResolutionAcknowledgedByCustomer'
        ELSE 'Closed'
    END,
    version = $version
WHERE id = $stream_id`}},

		{"customer_incidents_summary.logged", []string{"incident_logged"}, []string{`INSERT INTO customer_incidents_summary AS s (customer_id, pending)
VALUES (($data->>'CustomerId')::uuid, 1)
ON CONFLICT (customer_id) DO UPDATE SET pending = s.pending + 1`}},
		{"customer_incidents_summary.resolved", []string{"incident_resolved"}, []string{`UPDATE customer_incidents_summary s
SET pending = s.pending - 1, resolved = s.resolved + 1
FROM incident_details d
WHERE d.id = $stream_id AND s.customer_id = d.customer_id`}},
		{"customer_incidents_summary.acknowledged", []string{"resolution_acknowledged_by_customer"}, []string{`UPDATE customer_incidents_summary s
SET resolved = s.resolved - 1, acknowledged = s.acknowledged + 1
FROM incident_details d
WHERE d.id = $stream_id AND s.customer_id = d.customer_id`}},
		{"customer_incidents_summary.closed", []string{"incident_closed"}, []string{`UPDATE customer_incidents_summary s
SET acknowledged = s.acknowledged - 1, closed = s.closed + 1
FROM incident_details d
WHERE d.id = $stream_id AND s.customer_id = d.customer_id`}},
	}
}
