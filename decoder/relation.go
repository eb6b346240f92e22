package decoder

import (
	"fmt"
	"strings"
)

// field is an event field a column of the events table feeds.
type field uint8

const (
	fieldNone field = iota
	// required
	fieldSeqID
	fieldID
	fieldStreamID
	fieldVersion
	fieldData
	fieldType
	fieldTimestamp
	fieldTenantID
	// optional
	fieldDotnetType
	fieldCorrelationID
	fieldCausationID
	fieldHeaders
	fieldUserName
	fieldIsArchived
	fieldIsSkipped
	fieldBData

	numFields
	lastRequired = fieldTenantID
)

// columnNames are the columns of the events table, by the field they feed.
var columnNames = [numFields]string{
	fieldSeqID:         "seq_id",
	fieldID:            "id",
	fieldStreamID:      "stream_id",
	fieldVersion:       "version",
	fieldData:          "data",
	fieldType:          "type",
	fieldTimestamp:     "timestamp",
	fieldTenantID:      "tenant_id",
	fieldDotnetType:    "mt_dotnet_type",
	fieldCorrelationID: "correlation_id",
	fieldCausationID:   "causation_id",
	fieldHeaders:       "headers",
	fieldUserName:      "user_name",
	fieldIsArchived:    "is_archived",
	fieldIsSkipped:     "is_skipped",
	fieldBData:         "bdata",
}

func fieldOf(column string) field {
	for f := fieldSeqID; f < numFields; f++ {
		if columnNames[f] == column {
			return f
		}
	}
	return fieldNone
}

// MissingColumnError reports a Relation message for the events table that
// lacks required columns. Decode returns it for the Relation message and for
// every insert into the relation until the server describes it again.
type MissingColumnError struct {
	Relation string   // qualified name, "public.mt_events"
	Columns  []string // the missing required columns, in the order of Event's fields
}

// Error names the relation and the missing columns.
func (e *MissingColumnError) Error() string {
	return fmt.Sprintf("relation %s lacks required column(s) %s", e.Relation, strings.Join(e.Columns, ", "))
}

// column is one column of a Relation message.
type column struct {
	name    string
	typeOID uint32
	typmod  int32
	key     bool // part of the replica identity
}

// relation is what a Relation message says about a table.
type relation struct {
	oid       uint32
	namespace string
	name      string
	columns   []column
	// For the events table (target): fields[i] is the field column i feeds,
	// or err says why its rows cannot be decoded.
	target bool
	fields []field
	err    error
}

func (rel *relation) String() string { return rel.namespace + "." + rel.name }

func (d *Decoder) decodeRelation(data []byte) (Message, error) {
	r := reader{b: data, off: 1}
	rel := &relation{oid: r.u32()}
	rel.namespace = string(r.cstring())
	rel.name = string(r.cstring())
	r.u8() // replica identity
	n := int(r.u16())
	// Each column takes at least 10 bytes: do not trust n for the allocation.
	rel.columns = make([]column, 0, min(n, (len(data)-r.off)/10))
	for range n {
		flags := r.u8()
		name := r.cstring()
		typ := r.u32()
		mod := r.u32()
		if r.bad {
			break
		}
		rel.columns = append(rel.columns, column{name: string(name), typeOID: typ, typmod: int32(mod), key: flags&1 != 0})
	}
	if err := r.done(); err != nil {
		return Message{}, fmt.Errorf("decode relation %d: %w", rel.oid, err)
	}
	// pgoutput reports pg_catalog as "", never the events table's schema.
	rel.target = rel.namespace == d.schema && rel.name == d.table
	if rel.target {
		rel.fields, rel.err = mapColumns(rel)
	}
	d.rels[rel.oid] = rel
	if rel.err != nil {
		return Message{}, fmt.Errorf("decode relation %d: %w", rel.oid, rel.err)
	}
	return Message{}, nil
}

// mapColumns maps the columns of the events table to event fields by name.
func mapColumns(rel *relation) ([]field, error) {
	fields := make([]field, len(rel.columns))
	var seen [numFields]bool
	for i, c := range rel.columns {
		f := fieldOf(c.name)
		if f == fieldNone {
			continue // unknown column, e.g. one a later Marten adds
		}
		if seen[f] {
			return nil, fmt.Errorf("%w: relation %s has column %q twice", ErrMalformed, rel, c.name)
		}
		seen[f] = true
		fields[i] = f
	}
	var missing []string
	for f := fieldSeqID; f <= lastRequired; f++ {
		if !seen[f] {
			missing = append(missing, columnNames[f])
		}
	}
	if missing != nil {
		return nil, &MissingColumnError{Relation: rel.String(), Columns: missing}
	}
	return fields, nil
}

// RequiredColumns returns the columns the events table must have.
func RequiredColumns() []string {
	return append([]string(nil), columnNames[fieldSeqID:lastRequired+1]...)
}
