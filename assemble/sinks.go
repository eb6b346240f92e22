package assemble

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/martencdc/cdc"
	"github.com/martencdc/cdc/backfill"
	"github.com/martencdc/cdc/config"
	"github.com/martencdc/cdc/internal/tlsfile"
	"github.com/martencdc/cdc/pipeline"
	"github.com/martencdc/cdc/progression"
	"github.com/martencdc/cdc/route"
	"github.com/martencdc/cdc/sinks/elastic"
	"github.com/martencdc/cdc/sinks/file"
	"github.com/martencdc/cdc/sinks/kafka"
	"github.com/martencdc/cdc/sinks/nats"
	"github.com/martencdc/cdc/sinks/postgres"
	"github.com/martencdc/cdc/sinks/stdout"
)

// This file turns the sinks of a configuration into cdc.Sink values.

// preparer is a sink that checks or creates what it needs before the
// first write (a Kafka topic).
type preparer interface {
	Prepare(ctx context.Context) error
}

// checker is a sink that can say what is wrong with its target, one line
// per problem, for cdc validate.
type checker interface {
	Check(ctx context.Context) []string
}

// storeTraits is what a sink needs to know of the event store it serves.
type storeTraits struct {
	// conjoined: conjoined tenancy, where stream ids (and, with tenant
	// partitioning, seq_ids) are unique only within a tenant.
	conjoined bool
	// progress is the source's mt_event_progression, set when a sink has
	// marten_progress; perTenant: the store has a sequence per tenant
	// (rows per tenant); source and sourceDSN reach the source database.
	progress  *progression.Table
	perTenant bool
	pending   func(sink string, after cdc.Position) map[string]int64 // pipeline.Pipeline.PendingSeq, once the pipeline exists
	source    *pgxpool.Pool
	sourceDSN string
}

// progressInTx reports whether sc records its Marten progress in its own
// transactions: a postgres sink whose target is the source database.
func progressInTx(sc *config.Sink, traits storeTraits) bool {
	o, ok := sc.Options.(*config.PostgresOptions)
	return ok && sc.MartenProgress && traits.progress != nil && o.DSN == traits.sourceDSN
}

// detectProgress fills traits.progress and traits.perTenant when a sink of
// pc has marten_progress.
func detectProgress(ctx context.Context, pc *config.Pipeline, src *pgxpool.Pool, traits *storeTraits) error {
	if !slices.ContainsFunc(pc.Sinks, func(s config.Sink) bool { return s.MartenProgress }) {
		return nil
	}
	t, err := progression.Detect(ctx, src, pc.Source.Schema)
	if err != nil {
		return fmt.Errorf("marten_progress: %w", err)
	}
	events, err := backfill.Inspect(ctx, src, pc.Source.Schema)
	if err != nil {
		return fmt.Errorf("marten_progress: %w", err)
	}
	traits.progress, traits.perTenant = t, events.TenantKeyed()
	traits.source, traits.sourceDSN = src, pc.Source.DSN
	return nil
}

// detectStore reads the traits of the event store in schema: conjoined
// tenancy shows as tenant_id in mt_streams' primary key.
func detectStore(ctx context.Context, pool *pgxpool.Pool, schema string) (storeTraits, error) {
	var st storeTraits
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = to_regclass($1) AND i.indisprimary AND a.attname = 'tenant_id')`,
		pgx.Identifier{schema, "mt_streams"}.Sanitize()).Scan(&st.conjoined)
	if err != nil {
		return st, fmt.Errorf("inspect %s.mt_streams: %w", schema, err)
	}
	return st, nil
}

// buildSink makes the sink of sc and, when it can, prepares its target: a
// problem that retrying cannot fix (cdc.ErrMisconfigured: a missing Kafka
// topic without create_topics, index settings Elasticsearch refuses) is an
// error; one that may pass (an unreachable broker) is logged and left to
// the pipeline's retries. log carries the pipeline and the sink.
func (a *Assembler) buildSink(ctx context.Context, pipelineName string, sc *config.Sink, traits storeTraits, log *slog.Logger) (cdc.Sink, pipeline.Resumer, error) {
	s, err := a.newSink(ctx, pipelineName, sc, traits, log)
	if err != nil {
		return nil, nil, err
	}
	resume, _ := s.(pipeline.Resumer)
	if p, ok := s.(preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			if errors.Is(err, cdc.ErrMisconfigured) {
				_ = s.Close(context.WithoutCancel(ctx))
				return nil, nil, fmt.Errorf("sink %s: %w", sc.Name, err)
			}
			log.Warn("sink target not ready; its writes will be retried", "component", "assemble", "err", err)
		}
	}
	if sc.MartenProgress && traits.progress != nil && !progressInTx(sc, traits) {
		s = &progression.Sink{Sink: s, Writer: progression.NewWriter(traits.progress, pipelineName, sc.Name, traits.perTenant, traits.pending), DB: traits.source, Log: log}
	}
	if a.opts.Wrap != nil {
		s = a.opts.Wrap(sc.Name, s)
	}
	if a.opts.Metrics != nil {
		s = a.opts.Metrics.Sink(pipelineName, sc.Name, s)
	}
	return s, resume, nil
}

// newSink makes the sink of sc, undecorated and unprepared.
func (a *Assembler) newSink(ctx context.Context, pipelineName string, sc *config.Sink, traits storeTraits, log *slog.Logger) (s cdc.Sink, err error) {
	switch o := sc.Options.(type) {
	case *config.StdoutOptions:
		s = sharedSink{a.stdoutSink()}
	case *config.FileOptions:
		t := o.Template
		if t == nil {
			if t, err = route.Parse(o.Path); err != nil {
				return nil, fmt.Errorf("sink %s: path: %w", sc.Name, err)
			}
		}
		if s, err = file.New(file.Config{Path: t}); err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
	case *config.KafkaOptions:
		kc, err := kafkaConfig(o)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		kc.Logger = log
		if s, err = kafka.New(kc); err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
	case *config.ElasticOptions:
		ec, err := elasticConfig(o)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		ec.TenantPrefix = traits.conjoined
		ec.Logger = log
		if s, err = elastic.New(ec); err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
	case *config.NATSOptions:
		nc, err := natsConfig(o)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
		nc.Logger = log
		if s, err = nats.New(nc); err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
	case *config.PostgresOptions:
		var progress postgres.Progress
		if progressInTx(sc, traits) {
			progress = progression.NewWriter(traits.progress, pipelineName, sc.Name, traits.perTenant, traits.pending)
		}
		if s, err = postgresSink(ctx, pipelineName, sc.Name, o, progress, log); err != nil {
			return nil, fmt.Errorf("sink %s: %w", sc.Name, err)
		}
	default:
		return nil, fmt.Errorf("sink %s: kind %q cannot be built", sc.Name, sc.Kind)
	}
	return s, nil
}

// postgresSink makes a postgres sink with its own connection pool to the
// target, closed with the sink.
func postgresSink(ctx context.Context, pipelineName, name string, o *config.PostgresOptions, progress postgres.Progress, log *slog.Logger) (cdc.Sink, error) {
	pc := postgres.Config{Pipeline: pipelineName, Sink: name, Mode: postgres.Mode(o.Mode), Table: o.Table, Progress: progress, Logger: log}
	for _, p := range o.Projections {
		r, err := postgres.SQL(p.Name, p.On, p.SQL...)
		if err != nil {
			return nil, err
		}
		pc.Routes = append(pc.Routes, r)
	}
	// An instance paused in the middle of a batch (SIGSTOP, a frozen VM)
	// must not hold its locks on the target, the checkpoint row among
	// them, for longer than this: the instance that took the slot over
	// would wait for it.
	pool, err := newPool(ctx, o.DSN, "dsn", map[string]string{"idle_in_transaction_session_timeout": "30000"})
	if err != nil {
		return nil, err
	}
	pc.Pool = pool
	s, err := postgres.New(pc)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &ownedPool{Sink: s, pool: pool}, nil
}

// ownedPool is a postgres sink that closes its pool with it.
type ownedPool struct {
	*postgres.Sink
	pool *pgxpool.Pool
}

func (o *ownedPool) Close(ctx context.Context) error {
	err := o.Sink.Close(ctx)
	o.pool.Close()
	return err
}

// elasticConfig maps an elastic sink's configuration to the sink's; it
// reads the index settings file.
func elasticConfig(o *config.ElasticOptions) (elastic.Config, error) {
	ec := elastic.Config{
		Addresses:      o.Addresses,
		Index:          o.IndexTemplate,
		Mode:           o.Mode,
		Username:       o.Username,
		Password:       o.Password,
		APIKey:         o.APIKey,
		Workers:        o.Workers,
		FlushBytes:     o.FlushBytes,
		RequestTimeout: o.RequestTimeout,
	}
	if ec.Index == nil {
		t, err := route.Parse(o.Index)
		if err != nil {
			return ec, fmt.Errorf("index: %w", err)
		}
		ec.Index = t
	}
	if o.IndexSettings != "" {
		b, err := os.ReadFile(o.IndexSettings)
		if err != nil {
			return ec, fmt.Errorf("index_settings: %w", err)
		}
		if !json.Valid(b) {
			return ec, fmt.Errorf("index_settings: %s is not valid JSON", o.IndexSettings)
		}
		ec.IndexSettings = b
	}
	if o.TLS != nil {
		tc, err := tlsConfig(o.TLS)
		if err != nil {
			return ec, err
		}
		ec.TLS = tc
	}
	return ec, nil
}

// tlsConfig loads the files of a tls key.
func tlsConfig(o *config.TLSOptions) (*tls.Config, error) {
	tc, err := tlsfile.Files{CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile,
		ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}.Config()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// kafkaConfig maps a kafka sink's configuration to the sink's.
func kafkaConfig(o *config.KafkaOptions) (kafka.Config, error) {
	kc := kafka.Config{
		Brokers:                o.Brokers,
		Topic:                  o.TopicTemplate,
		Key:                    o.Key,
		Partitioner:            o.Partitioner,
		Value:                  o.Value,
		Compression:            o.Compression,
		CreateTopics:           o.CreateTopics,
		TopicPartitions:        o.TopicPartitions,
		TopicReplicationFactor: o.TopicReplicationFactor,
		MaxMessageBytes:        o.MaxMessageBytes,
		WriteTimeout:           o.WriteTimeout,
		ClientID:               o.ClientID,
	}
	if kc.Topic == nil {
		t, err := route.Parse(o.Topic)
		if err != nil {
			return kc, fmt.Errorf("topic: %w", err)
		}
		kc.Topic = t
	}
	if o.TLS != nil {
		tc, err := tlsConfig(o.TLS)
		if err != nil {
			return kc, err
		}
		kc.TLS = tc
	}
	if o.SASL != nil {
		kc.SASL = &kafka.SASL{Mechanism: o.SASL.Mechanism, Username: o.SASL.Username, Password: o.SASL.Password}
	}
	return kc, nil
}

// natsConfig maps a nats sink's configuration to the sink's.
func natsConfig(o *config.NATSOptions) (nats.Config, error) {
	nc := nats.Config{
		Servers:         o.Servers,
		Subject:         o.SubjectTemplate,
		Stream:          o.Stream,
		CreateStream:    o.CreateStream,
		StreamSubjects:  o.StreamSubjects,
		Retention:       o.StreamRetention,
		MaxAge:          o.StreamMaxAge,
		Replicas:        o.StreamReplicas,
		Storage:         o.StreamStorage,
		DuplicateWindow: o.DuplicateWindow,
		Value:           o.Value,
		MaxInFlight:     o.MaxInFlight,
		AckTimeout:      o.AckTimeout,
		Name:            o.ClientName,
		Auth:            nats.Auth{User: o.User, Password: o.Password, Token: o.Token, NKeyFile: o.NKeyFile, CredsFile: o.CredsFile},
	}
	if nc.Subject == nil {
		t, err := route.Parse(o.Subject)
		if err != nil {
			return nc, fmt.Errorf("subject: %w", err)
		}
		nc.Subject = t
	}
	if o.TLS != nil {
		tc, err := tlsConfig(o.TLS)
		if err != nil {
			return nc, err
		}
		nc.TLS = tc
	}
	return nc, nil
}

// sharedSink lets several pipelines write to one sink without one pipeline's
// Close closing it for the others.
type sharedSink struct{ cdc.Sink }

func (sharedSink) Close(context.Context) error { return nil }

// stdoutSink returns the process's one stdout sink, shared by every
// pipeline so that their lines never interleave.
func (a *Assembler) stdoutSink() *stdout.Sink {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stdout == nil {
		a.stdout = stdout.New(a.opts.Stdout)
	}
	return a.stdout
}
