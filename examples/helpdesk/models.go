package helpdesk

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/martencdc/cdc"
)

// Note is an entry of IncidentDetails.Notes.
type Note struct {
	Type              string // FromAgent or FromCustomer
	From              string // agent or customer id
	Content           string
	VisibleToCustomer bool
}

// Details is a row of incident_details. Optional columns are "" for NULL.
type Details struct {
	CustomerID, Status string
	Priority, Category string
	AgentID            string
	Notes              []Note
	Version            int64
}

// ShortInfo is a row of incident_short_info.
type ShortInfo struct {
	CustomerID, Status string
	Priority, Category string
	NotesCount         int
	Version            int64
}

// Summary is a row of customer_incidents_summary.
type Summary struct {
	Pending, Resolved, Acknowledged, Closed int
}

// Models are the three read models, by incident id (Details, Short) and by
// customer id (Summary), ids as lower-case uuid text.
type Models struct {
	Details map[string]Details
	Short   map[string]ShortInfo
	Summary map[string]Summary
}

var (
	categories = []string{"Software", "Hardware", "Network", "Database"}
	priorities = []string{"Critical", "High", "Medium", "Low"}
	statuses   = map[string]string{
		"incident_resolved":                   "Resolved",
		"resolution_acknowledged_by_customer": "ResolutionAcknowledgedByCustomer",
		"incident_closed":                     "Closed",
	}
)

// Recompute builds the read models from events. Only the order of each
// stream's events matters (they must be in stream version order); events of
// other types, of incidents never logged, or whose data does not decode are
// ignored.
func Recompute(events []*cdc.Event) Models {
	m := Models{Details: map[string]Details{}, Short: map[string]ShortInfo{}, Summary: map[string]Summary{}}
	for _, e := range events {
		var body struct {
			CustomerID string `json:"CustomerId"`
			AgentID    string `json:"AgentId"`
			Category   int
			Priority   int
			Response   struct {
				AgentID           string `json:"AgentId"`
				CustomerID        string `json:"CustomerId"`
				Content           string
				VisibleToCustomer bool
			}
		}
		if json.Unmarshal(e.Data, &body) != nil {
			continue
		}
		id := strings.ToLower(e.StreamID)
		d, s := m.Details[id], m.Short[id]
		if e.Type == "incident_logged" {
			customer := strings.ToLower(body.CustomerID)
			d = Details{CustomerID: customer, Status: "Pending", Notes: []Note{}}
			s = ShortInfo{CustomerID: customer, Status: "Pending"}
			c := m.Summary[customer]
			c.Pending++
			m.Summary[customer] = c
		} else if _, ok := m.Details[id]; !ok {
			continue
		}
		switch e.Type {
		case "incident_logged":
		case "incident_categorised":
			d.Category, s.Category = at(categories, body.Category), at(categories, body.Category)
		case "incident_prioritised":
			d.Priority, s.Priority = at(priorities, body.Priority), at(priorities, body.Priority)
		case "agent_assigned_to_incident":
			d.AgentID = strings.ToLower(body.AgentID)
		case "agent_responded_to_incident":
			d.Notes = append(d.Notes, Note{"FromAgent", body.Response.AgentID, body.Response.Content, body.Response.VisibleToCustomer})
			s.NotesCount++
		case "customer_responded_to_incident":
			d.Notes = append(d.Notes, Note{"FromCustomer", body.Response.CustomerID, body.Response.Content, true})
			s.NotesCount++
		case "incident_resolved", "resolution_acknowledged_by_customer", "incident_closed":
			d.Status, s.Status = statuses[e.Type], statuses[e.Type]
			c := m.Summary[d.CustomerID]
			switch e.Type {
			case "incident_resolved":
				c.Pending, c.Resolved = c.Pending-1, c.Resolved+1
			case "resolution_acknowledged_by_customer":
				c.Resolved, c.Acknowledged = c.Resolved-1, c.Acknowledged+1
			default:
				c.Acknowledged, c.Closed = c.Acknowledged-1, c.Closed+1
			}
			m.Summary[d.CustomerID] = c
		default:
			continue
		}
		d.Version, s.Version = e.Version, e.Version
		m.Details[id], m.Short[id] = d, s
	}
	return m
}

// at returns names[i], or "" (NULL) when i is out of range.
func at(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return ""
	}
	return names[i]
}

// Querier runs queries: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Read reads the read models from the target database.
func Read(ctx context.Context, q Querier) (Models, error) {
	m := Models{Details: map[string]Details{}, Short: map[string]ShortInfo{}, Summary: map[string]Summary{}}
	err := each(ctx, q, `SELECT id::text, customer_id::text, status, coalesce(priority, ''), coalesce(category, ''),
    coalesce(agent_id::text, ''), notes, version FROM incident_details`, func(r pgx.Rows) error {
		var id string
		var d Details
		var notes []byte
		if err := r.Scan(&id, &d.CustomerID, &d.Status, &d.Priority, &d.Category, &d.AgentID, &notes, &d.Version); err != nil {
			return err
		}
		if err := json.Unmarshal(notes, &d.Notes); err != nil {
			return fmt.Errorf("notes of incident %s: %w", id, err)
		}
		m.Details[id] = d
		return nil
	})
	if err != nil {
		return m, err
	}
	err = each(ctx, q, `SELECT id::text, customer_id::text, status, coalesce(priority, ''), coalesce(category, ''),
    notes_count, version FROM incident_short_info`, func(r pgx.Rows) error {
		var id string
		var s ShortInfo
		if err := r.Scan(&id, &s.CustomerID, &s.Status, &s.Priority, &s.Category, &s.NotesCount, &s.Version); err != nil {
			return err
		}
		m.Short[id] = s
		return nil
	})
	if err != nil {
		return m, err
	}
	err = each(ctx, q, `SELECT customer_id::text, pending, resolved, acknowledged, closed FROM customer_incidents_summary`, func(r pgx.Rows) error {
		var id string
		var s Summary
		if err := r.Scan(&id, &s.Pending, &s.Resolved, &s.Acknowledged, &s.Closed); err != nil {
			return err
		}
		m.Summary[id] = s
		return nil
	})
	return m, err
}

// each runs sql and calls fn for each row.
func each(ctx context.Context, q Querier, sql string, fn func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// maxDiffRows is how many differing rows Diff shows per table.
const maxDiffRows = 3

// Diff describes how got differs from want, a few rows per table; "" when
// they are equal.
func Diff(want, got Models) string {
	var b strings.Builder
	diffTable(&b, "incident_details", want.Details, got.Details)
	diffTable(&b, "incident_short_info", want.Short, got.Short)
	diffTable(&b, "customer_incidents_summary", want.Summary, got.Summary)
	return b.String()
}

func diffTable[V any](b *strings.Builder, name string, want, got map[string]V) {
	keys := make([]string, 0, len(want)+len(got))
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		w, inWant := want[k]
		g, inGot := got[k]
		if inWant && inGot && fmt.Sprint(w) == fmt.Sprint(g) {
			continue
		}
		bad++
		if bad > maxDiffRows {
			continue
		}
		switch {
		case !inGot:
			fmt.Fprintf(b, "%s[%s]: missing, want %+v\n", name, k, w)
		case !inWant:
			fmt.Fprintf(b, "%s[%s]: %+v, want no row\n", name, k, g)
		default:
			fmt.Fprintf(b, "%s[%s]:\n  got  %+v\n  want %+v\n", name, k, g, w)
		}
	}
	if bad > 0 {
		fmt.Fprintf(b, "%s: %d of %d rows differ (%d rows, want %d)\n", name, bad, len(keys), len(got), len(want))
	}
}
