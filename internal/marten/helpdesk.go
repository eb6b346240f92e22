package marten

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode"
)

// HelpdeskStreamType is the aggregate alias of Helpdesk incident streams
// (mt_streams.type).
const HelpdeskStreamType = "incident"

// helpdeskNamespace and helpdeskAssembly make the .NET type names of the
// Helpdesk sample's events.
const (
	helpdeskNamespace = "Helpdesk.Api.Incidents"
	helpdeskAssembly  = "Helpdesk.Api"
)

// kind is a Helpdesk event type.
type kind int

const (
	incidentLogged kind = iota
	incidentCategorised
	incidentPrioritised
	agentAssignedToIncident
	agentRespondedToIncident
	customerRespondedToIncident
	incidentResolved
	resolutionAcknowledgedByCustomer
	incidentClosed
)

// kindNames are the C# type names, in lifecycle order.
var kindNames = [...]string{
	incidentLogged:                   "IncidentLogged",
	incidentCategorised:              "IncidentCategorised",
	incidentPrioritised:              "IncidentPrioritised",
	agentAssignedToIncident:          "AgentAssignedToIncident",
	agentRespondedToIncident:         "AgentRespondedToIncident",
	customerRespondedToIncident:      "CustomerRespondedToIncident",
	incidentResolved:                 "IncidentResolved",
	resolutionAcknowledgedByCustomer: "ResolutionAcknowledgedByCustomer",
	incidentClosed:                   "IncidentClosed",
}

// HelpdeskEventTypes returns the aliases of the Helpdesk event types
// (mt_events.type), in lifecycle order: "incident_logged",
// "incident_categorised", ..., "incident_closed".
func HelpdeskEventTypes() []string {
	out := make([]string, len(kindNames))
	for i, n := range kindNames {
		out[i] = EventTypeAlias(n)
	}
	return out
}

// HelpdeskDotnetType returns the .NET type name Marten stores in
// mt_dotnet_type for a Helpdesk event type given by its alias, e.g.
// "incident_logged" -> "Helpdesk.Api.Incidents.IncidentLogged, Helpdesk.Api",
// or "" for an unknown alias.
func HelpdeskDotnetType(alias string) string {
	for _, n := range kindNames {
		if EventTypeAlias(n) == alias {
			return helpdeskNamespace + "." + n + ", " + helpdeskAssembly
		}
	}
	return ""
}

// EventTypeAlias returns the alias Marten gives an event type by default:
// the C# type name split before each upper-case letter, lower-cased and
// joined with '_' ("IncidentLogged" -> "incident_logged").
func EventTypeAlias(typeName string) string {
	var b strings.Builder
	for i, r := range typeName {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// The Helpdesk sample's enums, serialized as integers by System.Text.Json.
const (
	contactEmail = iota
	contactPhone
	contactInPerson
	contactGeneratedBySystem
)

const (
	numCategories  = 4 // Software, Hardware, Network, Database
	numPriorities  = 4 // Critical, High, Medium, Low
	numResolutions = 3 // Temporary, Permanent, NotAnIncident
)

// dotnetTime marshals as System.Text.Json writes a DateTimeOffset in UTC:
// "2026-11-22T10:00:00.1234567+00:00", trailing fractional zeros trimmed.
type dotnetTime time.Time

// MarshalJSON implements json.Marshaler.
func (t dotnetTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.9999999-07:00") + `"`), nil
}

// Event bodies, with the properties in C# declaration order.
type (
	contactBody struct {
		ContactChannel int     `json:"ContactChannel"`
		FirstName      *string `json:"FirstName"`
		LastName       *string `json:"LastName"`
		EmailAddress   *string `json:"EmailAddress"`
		PhoneNumber    *string `json:"PhoneNumber"`
	}
	incidentLoggedBody struct {
		IncidentID  string      `json:"IncidentId"`
		CustomerID  string      `json:"CustomerId"`
		Contact     contactBody `json:"Contact"`
		Description string      `json:"Description"`
		LoggedBy    string      `json:"LoggedBy"`
		LoggedAt    dotnetTime  `json:"LoggedAt"`
	}
	incidentCategorisedBody struct {
		IncidentID    string     `json:"IncidentId"`
		Category      int        `json:"Category"`
		CategorisedBy string     `json:"CategorisedBy"`
		CategorisedAt dotnetTime `json:"CategorisedAt"`
	}
	incidentPrioritisedBody struct {
		IncidentID    string     `json:"IncidentId"`
		Priority      int        `json:"Priority"`
		PrioritisedBy string     `json:"PrioritisedBy"`
		PrioritisedAt dotnetTime `json:"PrioritisedAt"`
	}
	agentAssignedBody struct {
		IncidentID string     `json:"IncidentId"`
		AgentID    string     `json:"AgentId"`
		AssignedAt dotnetTime `json:"AssignedAt"`
	}
	fromAgentBody struct {
		AgentID           string `json:"AgentId"`
		Content           string `json:"Content"`
		VisibleToCustomer bool   `json:"VisibleToCustomer"`
	}
	agentRespondedBody struct {
		IncidentID  string        `json:"IncidentId"`
		Response    fromAgentBody `json:"Response"`
		RespondedAt dotnetTime    `json:"RespondedAt"`
	}
	fromCustomerBody struct {
		CustomerID string `json:"CustomerId"`
		Content    string `json:"Content"`
	}
	customerRespondedBody struct {
		IncidentID  string           `json:"IncidentId"`
		Response    fromCustomerBody `json:"Response"`
		RespondedAt dotnetTime       `json:"RespondedAt"`
	}
	incidentResolvedBody struct {
		IncidentID string     `json:"IncidentId"`
		Resolution int        `json:"Resolution"`
		ResolvedBy string     `json:"ResolvedBy"`
		ResolvedAt dotnetTime `json:"ResolvedAt"`
	}
	resolutionAcknowledgedBody struct {
		IncidentID     string     `json:"IncidentId"`
		AcknowledgedBy string     `json:"AcknowledgedBy"`
		AcknowledgedAt dotnetTime `json:"AcknowledgedAt"`
	}
	incidentClosedBody struct {
		IncidentID string     `json:"IncidentId"`
		ClosedBy   string     `json:"ClosedBy"`
		ClosedAt   dotnetTime `json:"ClosedAt"`
	}
)

// person is a customer or an agent.
type person struct {
	id, first, last, email, phone string
}

// incident is an open incident and the rest of its lifecycle.
type incident struct {
	id       string
	customer *person
	agent    *person // assigned agent; nil until assigned
	triage   *person // agent who categorises and prioritises
	plan     []kind  // events still to come, in order
}

// Helpdesk generates a workload from Marten's Helpdesk sample: incidents
// (streams of type "incident") that are logged, categorised, prioritised,
// assigned to an agent, discussed between agent and customer, resolved,
// acknowledged by the customer and closed.
//
// Given the same *rand.Rand seed, the sequence of streams touched and event
// types generated is the same; ids, timestamps, correlation and causation
// ids come from the clock and crypto/rand. A Helpdesk is not safe for
// concurrent use.
type Helpdesk struct {
	// MaxOpen is the most incidents open at once; when fewer are open, Next
	// opens a new one a third of the time. Default (0): 8.
	MaxOpen int

	rng       *rand.Rand
	now       func() time.Time
	customers []*person
	agents    []*person
	open      []*incident
}

var (
	firstNames = []string{"Han", "Leia", "Luke", "Padmé", "Lando", "Rey", "Finn", "Poe", "Jyn", "Cassian", "Ahsoka", "Mon"}
	lastNames  = []string{"Solo", "Organa", "Skywalker", "Amidala", "Calrissian", "Kenobi", "Andor", "Erso", "Dameron", "Tano", "Mothma", "Windu"}
	problems   = []string{
		"Printer on the third floor prints blank pages",
		"Cannot connect to the VPN since this morning",
		"Laptop does not boot after the last update",
		"Invoices report times out when filtered by month",
		"Password reset email never arrives",
		"Wi-Fi drops every few minutes in meeting room B",
		"Order database is read-only, checkout fails",
		"Outlook keeps asking for credentials",
		"Monitor flickers when docked",
		"Shared drive shows files from last week only",
	}
	agentReplies = []string{
		"Thanks for reporting this. Could you send a screenshot of the error?",
		"We have reproduced the problem and are working on a fix.",
		"Please restart the device and tell us whether the problem persists.",
		"A technician will come by this afternoon.",
		"Internal note: looks related to last night's deployment.",
		"We applied a workaround; please check again.",
	}
	customerReplies = []string{
		"Screenshot attached, it happens every time.",
		"Restarted, still the same.",
		"It works now, thank you!",
		"It happens only when I am on the office network.",
		"Any news? This is blocking my team.",
	}
)

// NewHelpdesk returns a generator drawing its choices from rng, with a
// fixed pool of 20 customers and 5 agents.
func NewHelpdesk(rng *rand.Rand) *Helpdesk {
	h := &Helpdesk{rng: rng, now: time.Now}
	for range 20 {
		h.customers = append(h.customers, h.newPerson("example.com"))
	}
	for range 5 {
		h.agents = append(h.agents, h.newPerson("helpdesk.example.com"))
	}
	return h
}

// newPerson makes a person with an id drawn from the rng.
func (h *Helpdesk) newPerson(domain string) *person {
	var id [16]byte
	for i := range id {
		id[i] = byte(h.rng.UintN(256))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant
	first := firstNames[h.rng.IntN(len(firstNames))]
	last := lastNames[h.rng.IntN(len(lastNames))]
	return &person{
		id:    formatUUID(id),
		first: first,
		last:  last,
		email: strings.ToLower(first+"."+last) + "@" + domain,
		phone: fmt.Sprintf("+44 20 7946 %04d", h.rng.IntN(10000)),
	}
}

// Open returns the number of incidents currently open.
func (h *Helpdesk) Open() int { return len(h.open) }

// Next picks an open incident, or opens a new one, and returns its stream
// id (the incident id) and the next 1 to 3 events of its lifecycle. All the
// events of one call share a correlation id (a trace id), a causation id
// (the id of the command that produced them) and headers. A closed
// incident is never picked again.
func (h *Helpdesk) Next() (streamID string, events []NewEvent) {
	maxOpen := h.MaxOpen
	if maxOpen <= 0 {
		maxOpen = 8
	}
	var inc *incident
	if len(h.open) == 0 || (len(h.open) < maxOpen && h.rng.IntN(3) == 0) {
		inc = h.newIncident()
		h.open = append(h.open, inc)
	} else {
		inc = h.open[h.rng.IntN(len(h.open))]
	}

	n := min(1+h.rng.IntN(3), len(inc.plan))
	now := h.now()
	traceID := randomHex(16)
	causationID := NewID()
	headers, err := json.Marshal(map[string]string{
		"source":      helpdeskAssembly,
		"traceparent": "00-" + traceID + "-" + randomHex(8) + "-01",
	})
	if err != nil {
		panic(fmt.Sprintf("marten: encode headers: %v", err)) // cannot happen: a map of strings
	}
	for _, k := range inc.plan[:n] {
		events = append(events, NewEvent{
			ID:            NewID(),
			Type:          EventTypeAlias(kindNames[k]),
			DotnetType:    helpdeskNamespace + "." + kindNames[k] + ", " + helpdeskAssembly,
			Data:          h.body(inc, k, now),
			CausationID:   causationID,
			CorrelationID: traceID,
			Headers:       headers,
			Timestamp:     now,
		})
	}
	inc.plan = inc.plan[n:]
	if len(inc.plan) == 0 {
		h.open = slices.DeleteFunc(h.open, func(o *incident) bool { return o == inc })
	}
	return inc.id, events
}

// newIncident opens an incident and plans its lifecycle.
func (h *Helpdesk) newIncident() *incident {
	inc := &incident{
		id:       NewID(),
		customer: h.customers[h.rng.IntN(len(h.customers))],
		triage:   h.agents[h.rng.IntN(len(h.agents))],
	}
	triage := []kind{incidentCategorised, incidentPrioritised, agentAssignedToIncident}
	h.rng.Shuffle(len(triage), func(i, j int) { triage[i], triage[j] = triage[j], triage[i] })
	inc.plan = append([]kind{incidentLogged}, triage...)
	for range h.rng.IntN(4) {
		inc.plan = append(inc.plan, agentRespondedToIncident)
		if h.rng.IntN(4) != 0 {
			inc.plan = append(inc.plan, customerRespondedToIncident)
		}
	}
	inc.plan = append(inc.plan, incidentResolved, resolutionAcknowledgedByCustomer, incidentClosed)
	return inc
}

// body returns the JSON body of event k of inc at time now.
func (h *Helpdesk) body(inc *incident, k kind, now time.Time) json.RawMessage {
	at := dotnetTime(now)
	agent := inc.agent
	if agent == nil {
		agent = inc.triage
	}
	var v any
	switch k {
	case incidentLogged:
		c := inc.customer
		channel := h.rng.IntN(4)
		contact := contactBody{ContactChannel: channel}
		loggedBy := inc.triage.id // an agent takes the call or the visit
		switch channel {
		case contactEmail:
			contact.FirstName, contact.LastName, contact.EmailAddress = &c.first, &c.last, &c.email
			loggedBy = c.id
		case contactPhone:
			contact.FirstName, contact.LastName, contact.PhoneNumber = &c.first, &c.last, &c.phone
		case contactInPerson:
			contact.FirstName, contact.LastName = &c.first, &c.last
		case contactGeneratedBySystem:
			loggedBy = c.id
		}
		v = incidentLoggedBody{
			IncidentID:  inc.id,
			CustomerID:  c.id,
			Contact:     contact,
			Description: problems[h.rng.IntN(len(problems))],
			LoggedBy:    loggedBy,
			LoggedAt:    at,
		}
	case incidentCategorised:
		v = incidentCategorisedBody{inc.id, h.rng.IntN(numCategories), inc.triage.id, at}
	case incidentPrioritised:
		v = incidentPrioritisedBody{inc.id, h.rng.IntN(numPriorities), inc.triage.id, at}
	case agentAssignedToIncident:
		inc.agent = h.agents[h.rng.IntN(len(h.agents))]
		v = agentAssignedBody{inc.id, inc.agent.id, at}
	case agentRespondedToIncident:
		text := agentReplies[h.rng.IntN(len(agentReplies))]
		v = agentRespondedBody{inc.id, fromAgentBody{agent.id, text, !strings.HasPrefix(text, "Internal note")}, at}
	case customerRespondedToIncident:
		v = customerRespondedBody{inc.id, fromCustomerBody{inc.customer.id, customerReplies[h.rng.IntN(len(customerReplies))]}, at}
	case incidentResolved:
		v = incidentResolvedBody{inc.id, h.rng.IntN(numResolutions), agent.id, at}
	case resolutionAcknowledgedByCustomer:
		v = resolutionAcknowledgedBody{inc.id, inc.customer.id, at}
	case incidentClosed:
		v = incidentClosedBody{inc.id, agent.id, at}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marten: encode %s: %v", kindNames[k], err)) // cannot happen: plain structs
	}
	return b
}

// randomHex returns n random bytes from crypto/rand as lower-case hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b) // never fails (crashes the program instead)
	return hex.EncodeToString(b)
}
