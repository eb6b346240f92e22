package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Row is one line of the benchmark's table: what was measured and its
// figures; a zero figure is not applicable (shown as "-").
type Row struct {
	Name    string  `json:"name"`              // e.g. "ceiling", "cdc kafka", "polling @ 2000/s"
	Events  int     `json:"events"`            // events measured
	Rate    float64 `json:"events_per_s"`      // catch-up events/s
	Ratio   float64 `json:"ratio_to_ceiling"`  // Rate / the ceiling's
	P50     float64 `json:"p50_ms"`            // latency from commit, ms
	P99     float64 `json:"p99_ms"`            //
	Max     float64 `json:"max_ms"`            //
	Seconds float64 `json:"seconds,omitempty"` // a duration measured (the big transaction: commit to checkpoint)
	PeakRSS int64   `json:"peak_rss_bytes"`    // of the cdc process
	Missing int     `json:"missing"`           // committed events that did not arrive
	Lost    int     `json:"skipped_for_good"`  // the poller: events it skipped and never delivered
	Note    string  `json:"note,omitempty"`    //
	// CPU is where the machine's time went during a catch-up measure.
	CPU *CPU `json:"cpu_cores,omitempty"`
}

// Report is the benchmark's result.
type Report struct {
	Machine string `json:"machine"` // CPUs, OS, PostgreSQL version
	Command string `json:"command"` // how it was run
	Started string `json:"started"`
	Rows    []Row  `json:"rows"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Markdown writes the report as a Markdown table.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.Machine)
	b.WriteString("| measure | events | events/s | ratio to ceiling | p50 ms | p99 ms | max ms | time s | peak RSS MiB | CPU cores: cdc / PostgreSQL / cdc-bench | missing | skipped for good | note |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s |\n", row.Name, row.Events,
			num(row.Rate, 0), num(row.Ratio, 2), num(row.P50, 1), num(row.P99, 1), num(row.Max, 1), num(row.Seconds, 2),
			num(float64(row.PeakRSS)/(1<<20), 1), row.CPU.text(), row.Missing, row.Lost, row.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSV writes the report's rows as CSV with a header.
func (r *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"measure", "events", "events_per_s", "ratio_to_ceiling", "p50_ms", "p99_ms", "max_ms", "seconds", "peak_rss_bytes", "missing", "skipped_for_good", "note",
		"cpu_cdc", "cpu_postgresql", "cpu_bench"})
	for _, row := range r.Rows {
		_ = cw.Write([]string{row.Name, strconv.Itoa(row.Events), f(row.Rate), f(row.Ratio), f(row.P50), f(row.P99), f(row.Max), f(row.Seconds),
			strconv.FormatInt(row.PeakRSS, 10), strconv.Itoa(row.Missing), strconv.Itoa(row.Lost), row.Note,
			row.CPU.field(func(c *CPU) float64 { return c.CDC }), row.CPU.field(func(c *CPU) float64 { return c.Server }),
			row.CPU.field(func(c *CPU) float64 { return c.Bench })})
	}
	cw.Flush()
	return cw.Error()
}

// JSON writes the report as indented JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func f(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// num formats v with prec decimals and thousands separators, "-" for 0.
func num(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var out []byte
	for i := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, intPart[i])
	}
	s = string(out)
	if neg {
		s = "-" + s
	}
	if frac != "" {
		s += "." + frac
	}
	return s
}

// text formats c for the Markdown table: "cdc / PostgreSQL / cdc-bench"
// in cores, "-" for what was not measured.
func (c *CPU) text() string {
	if c == nil {
		return "-"
	}
	part := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return part(c.CDC) + " / " + part(c.Server) + " / " + part(c.Bench)
}

// field returns one of c's values for the CSV, empty when not measured.
func (c *CPU) field(get func(*CPU) float64) string {
	if c == nil || get(c) < 0 {
		return ""
	}
	return f(get(c))
}
