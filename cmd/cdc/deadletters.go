package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/martencdc/cdc/assemble"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/deadletter"
	"github.com/martencdc/cdc/internal/cli"
)

const deadLettersUsage = `Usage:
  cdc deadletters list    --config FILE [--pipeline NAME] [--sink NAME] [--json]
  cdc deadletters show    --config FILE [--pipeline NAME] --id N [--json]
  cdc deadletters retry   --config FILE [--pipeline NAME] --sink NAME (--id N... | --all)
  cdc deadletters discard --config FILE [--pipeline NAME] --sink NAME (--id N... | --all)

--pipeline may be left out when the configuration has one pipeline.
Run "cdc deadletters COMMAND -h" for the flags of a command.
`

// cmdDeadLetters inspects, re-sends and discards the events sinks with
// on_error: dead_letter set aside in cdc_dead_letters.
func cmdDeadLetters(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, deadLettersUsage)
		return &cli.UsageError{Err: cli.ErrReported}
	}
	switch args[0] {
	case "list", "show", "retry", "discard":
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, deadLettersUsage)
		return nil
	default:
		fmt.Fprintf(e.stderr, "cdc: deadletters: unknown command %q\n\n%s", args[0], deadLettersUsage)
		return &cli.UsageError{Err: cli.ErrReported}
	}
	dc, err := parseDeadLetters(args[0], args[1:], e)
	if err != nil {
		return err
	}
	cp, err := assemble.NewPool(ctx, dc.pc.Checkpoints.DSN, "checkpoints.dsn")
	if err != nil {
		return err
	}
	defer cp.Close()
	if err := assemble.WaitReachable(ctx, cp, "the checkpoint database", false, nil); err != nil {
		return err
	}
	dc.store = deadletter.New(cp, dc.pc.Checkpoints.Schema)
	switch dc.sub {
	case "list":
		return dc.list(ctx)
	case "show":
		return dc.show(ctx)
	case "retry":
		return dc.retry(ctx)
	default:
		return dc.discard(ctx)
	}
}

// deadLetters is one cdc deadletters command, its flags parsed.
type deadLetters struct {
	sub    string
	e      env
	log    *slog.Logger
	pc     *config.Pipeline
	sc     *config.Sink // nil: every sink of the pipeline (list, show)
	ids    []int64
	all    bool
	asJSON bool
	store  *deadletter.Store
}

// idList is the repeatable --id flag; "--id 3,4" is "--id 3 --id 4".
type idList []int64

func (l *idList) String() string {
	s := make([]string, len(*l))
	for i, id := range *l {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func (l *idList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("%q is not a dead letter id (a positive integer, as cdc deadletters list prints)", f)
		}
		*l = append(*l, id)
	}
	return nil
}

// parseDeadLetters parses the flags of subcommand sub and checks their
// combination.
func parseDeadLetters(sub string, args []string, e env) (*deadLetters, error) {
	cc := newConfigCommand("deadletters " + sub)
	pipelineName := cc.fs.String("pipeline", "", "the pipeline (required when the configuration has several)")
	var sinkName *string
	var all, asJSON *bool
	var ids idList
	switch sub {
	case "list":
		sinkName = cc.fs.String("sink", "", "only this sink's dead letters (default: every sink of the pipeline)")
		asJSON = cc.fs.Bool("json", false, "print JSON")
	case "show":
		cc.fs.Var(&ids, "id", "the dead letter to show (required)")
		asJSON = cc.fs.Bool("json", false, "print JSON")
	case "retry", "discard":
		sinkName = cc.fs.String("sink", "", "the sink whose dead letters to "+sub+" (required)")
		cc.fs.Var(&ids, "id", "a dead letter to "+sub+" (repeatable, or comma-separated)")
		all = cc.fs.Bool("all", false, "every dead letter of the sink")
	}
	cfg, log, err := cc.parse(args, e)
	if err != nil {
		return nil, err
	}
	dc := &deadLetters{sub: sub, e: e, log: log, ids: ids}
	if all != nil {
		dc.all = *all
	}
	if asJSON != nil {
		dc.asJSON = *asJSON
	}
	switch sub {
	case "show":
		if len(ids) != 1 {
			return nil, cli.Usagef("deadletters show: --id N is required, once")
		}
	case "retry", "discard":
		switch {
		case dc.all && len(ids) > 0:
			return nil, cli.Usagef("deadletters %s: --id and --all exclude each other", sub)
		case !dc.all && len(ids) == 0:
			return nil, cli.Usagef("deadletters %s: --id N (repeatable) or --all is required", sub)
		}
	}
	name := ""
	if sinkName != nil {
		name = *sinkName
	}
	if name == "" && (sub == "list" || sub == "show") {
		dc.pc, err = pickPipeline(cfg, *pipelineName)
	} else {
		dc.pc, dc.sc, err = replayTarget(cfg, *pipelineName, name)
	}
	if err != nil {
		return nil, err
	}
	return dc, nil
}

// pickPipeline returns the pipeline named, or the only one.
func pickPipeline(cfg *config.Config, name string) (*config.Pipeline, error) {
	switch {
	case name != "":
		selected, err := selectPipelines(cfg, []string{name})
		if err != nil {
			return nil, err
		}
		return selected[0], nil
	case len(cfg.Pipelines) == 1:
		return &cfg.Pipelines[0], nil
	}
	return nil, cli.Usagef("--pipeline NAME is required: the configuration has %d pipelines", len(cfg.Pipelines))
}

// filter chooses the dead letters the flags name.
func (dc *deadLetters) filter() deadletter.Filter {
	f := deadletter.Filter{Pipeline: dc.pc.Name, IDs: dc.ids}
	if dc.sc != nil {
		f.Sink = dc.sc.Name
	}
	return f
}

// what names the sink (or pipeline) in messages.
func (dc *deadLetters) what() string {
	if dc.sc == nil {
		return "pipeline " + dc.pc.Name
	}
	return dc.pc.Name + "/" + dc.sc.Name
}

// chosen lists the dead letters the flags name; every --id must be one of
// the sink's.
func (dc *deadLetters) chosen(ctx context.Context) ([]deadletter.Letter, error) {
	letters, err := dc.store.List(ctx, dc.filter())
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range dc.ids {
		if !slices.ContainsFunc(letters, func(l deadletter.Letter) bool { return l.ID == id }) {
			missing = append(missing, strconv.FormatInt(id, 10))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s has no dead letter with id %s (cdc deadletters list shows them); nothing done", dc.what(), strings.Join(missing, ", "))
	}
	return letters, nil
}

// letterJSON is a dead letter in the JSON output.
type letterJSON struct {
	ID        int64           `json:"id"`
	Pipeline  string          `json:"pipeline"`
	Sink      string          `json:"sink"`
	Position  string          `json:"position"`
	LSN       string          `json:"lsn"`
	TxIndex   uint32          `json:"tx_index"`
	EventID   string          `json:"event_id"`
	StreamID  string          `json:"stream_id"`
	Type      string          `json:"type"`
	Error     string          `json:"error"`
	CreatedAt time.Time       `json:"created_at"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

func toJSON(l deadletter.Letter, payload bool) letterJSON {
	j := letterJSON{ID: l.ID, Pipeline: l.Pipeline, Sink: l.Sink, Position: l.Position.String(), LSN: l.Position.LSN.String(),
		TxIndex: l.Position.Index, EventID: l.EventID, StreamID: l.StreamID, Type: l.Type, Error: l.Error, CreatedAt: l.CreatedAt.UTC()}
	if payload {
		j.Payload = l.Envelope()
	}
	return j
}

// list prints one line per dead letter, oldest position first.
func (dc *deadLetters) list(ctx context.Context) error {
	letters, err := dc.chosen(ctx)
	if err != nil {
		return err
	}
	if dc.asJSON {
		out := make([]letterJSON, len(letters))
		for i, l := range letters {
			out[i] = toJSON(l, false)
		}
		enc := json.NewEncoder(dc.e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(letters) == 0 {
		fmt.Fprintf(dc.e.stdout, "no dead letters for %s\n", dc.what())
		return nil
	}
	tw := tabwriter.NewWriter(dc.e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSINK\tCREATED\tPOSITION\tEVENT\tTYPE\tSTREAM\tERROR")
	for _, l := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Sink, l.CreatedAt.UTC().Format(time.RFC3339),
			l.Position, l.EventID, l.Type, l.StreamID, shorten(l.Error, 100))
	}
	return tw.Flush()
}

// shorten puts msg on one line (white space runs become one space) and cuts
// it to at most n characters.
func shorten(msg string, n int) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if r := []rune(msg); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return msg
}

// show prints one dead letter: the whole row, the error in full and the
// payload pretty-printed.
func (dc *deadLetters) show(ctx context.Context) error {
	l, err := dc.store.Get(ctx, dc.pc.Name, dc.ids[0])
	if errors.Is(err, deadletter.ErrNotFound) {
		return fmt.Errorf("pipeline %s has no dead letter with id %d (cdc deadletters list shows them)", dc.pc.Name, dc.ids[0])
	} else if err != nil {
		return err
	}
	payload := prettyPayload(l)
	if dc.asJSON {
		enc := json.NewEncoder(dc.e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(toJSON(l, true))
	}
	w := dc.e.stdout
	fmt.Fprintf(w, "dead letter %d\n", l.ID)
	for _, kv := range [][2]string{
		{"pipeline", l.Pipeline}, {"sink", l.Sink}, {"created", l.CreatedAt.UTC().Format(time.RFC3339Nano)},
		{"position", l.Position.String()}, {"event", l.EventID}, {"type", l.Type}, {"stream", l.StreamID},
	} {
		fmt.Fprintf(w, "  %-9s %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(w, "error:\n%s\n", indentLines(l.Error, "  "))
	fmt.Fprintf(w, "payload:\n%s\n", indentLines(payload, "  "))
	return nil
}

// prettyPayload returns the envelope of l indented, its fields in the
// envelope's order when it decodes.
func prettyPayload(l deadletter.Letter) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, l.Envelope(), "", "  "); err != nil {
		return string(l.Payload)
	}
	return buf.String()
}

func indentLines(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// retry re-sends the chosen dead letters to the sink through its own write
// path, removing each once the sink accepted it.
func (dc *deadLetters) retry(ctx context.Context) error {
	letters, err := dc.chosen(ctx)
	if err != nil {
		return err
	}
	// The report goes to stderr when the stdout sink writes the events to
	// stdout.
	report := dc.e.stdout
	if _, ok := dc.sc.Options.(*config.StdoutOptions); ok {
		report = dc.e.stderr
	}
	if len(letters) == 0 {
		fmt.Fprintf(report, "no dead letters for %s\n", dc.what())
		return nil
	}
	a := assemble.New(assemble.Options{Stdout: dc.e.stdout, Logger: dc.log})
	sink, err := a.OpenSink(ctx, dc.pc, dc.sc.Name)
	if err != nil {
		return err
	}
	log := dc.log.With("component", "deadletters", "pipeline", dc.pc.Name, "sink", dc.sc.Name)
	res, err := dc.store.Retry(ctx, sink, letters, dc.sc.Batch.WithDefaults().MaxEvents, log)
	if cerr := sink.Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
		err = fmt.Errorf("close sink %s: %w", dc.sc.Name, cerr)
	}
	left := len(letters) - len(res.Delivered) - len(res.Rejected)
	fmt.Fprintf(report, "%s: %d re-sent and removed, %d rejected again and kept, %d not sent\n",
		dc.what(), len(res.Delivered), len(res.Rejected), left)
	var errs []error
	for _, r := range res.Rejected {
		l := r.Letter
		errs = append(errs, fmt.Errorf("dead letter %d (event %s, %s at %s) rejected again, kept: %s",
			l.ID, l.EventID, l.Type, l.Position, shorten(r.Err.Error(), 300)))
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("retry stopped, %d dead letters not sent are kept: %w", left, err))
	}
	return errors.Join(errs...)
}

// discard removes the chosen dead letters, logging each.
func (dc *deadLetters) discard(ctx context.Context) error {
	if _, err := dc.chosen(ctx); err != nil {
		return err
	}
	removed, err := dc.store.Delete(ctx, dc.filter())
	if err != nil {
		return err
	}
	log := dc.log.With("component", "deadletters", "pipeline", dc.pc.Name, "sink", dc.sc.Name)
	for _, l := range removed {
		log.Info("dead letter discarded", "id", l.ID, "event_id", l.EventID, "type", l.Type,
			"stream_id", l.StreamID, "position", l.Position.String())
	}
	fmt.Fprintf(dc.e.stdout, "%s: %d dead letters discarded\n", dc.what(), len(removed))
	return nil
}
