package elastic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// itemOverhead is the size of an item's action line beyond its index and
// id, and of the line feeds.
const itemOverhead = 80

// filterPath keeps of a bulk response what the sink reads: every item's
// status (so that the items still line up with the request's) and error,
// and the error of a refused request (Elasticsearch filters those too).
var filterPath = []string{
	"error.type",
	"error.reason",
	"error.caused_by.type",
	"error.caused_by.reason",
	"errors",
	"items.*.status",
	"items.*.error.type",
	"items.*.error.reason",
	"items.*.error.caused_by.type",
	"items.*.error.caused_by.reason",
}

// filterQuery is the query string of filterPath, as esapi encodes it.
var filterQuery = "?" + url.Values{"filter_path": {strings.Join(filterPath, ",")}}.Encode()

// cancelKey holds the CancelFunc of a flush's context.
type cancelKey struct{}

// bulk sends the documents with a bulk indexer and waits for every result.
//
// The indexer's workers send their requests with a context of their own
// (context.Background): OnFlushStart gives them ctx, bounded by the request
// timeout, instead. The indexer is closed with a context that does not end
// so that no callback runs after bulk returns; its requests end with ctx.
func (s *Sink) bulk(ctx context.Context, docs []*doc) {
	// Each worker allocates a buffer of FlushBytes: no bigger than the
	// round needs.
	size := 1024
	for _, d := range docs {
		size += len(d.body) + len(d.index) + len(d.id) + itemOverhead
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     s.es,
		NumWorkers: min(s.workers, len(docs)),
		FlushBytes: min(s.flushBytes, size),
		FilterPath: filterPath,
		OnFlushStart: func(context.Context) context.Context {
			c, cancel := s.withTimeout(ctx)
			return context.WithValue(c, cancelKey{}, cancel)
		},
		OnFlushEnd: func(c context.Context) {
			if cancel, ok := c.Value(cancelKey{}).(context.CancelFunc); ok {
				cancel()
			}
		},
	})
	if err != nil { // it never fails with a client given
		for _, d := range docs {
			d.state, d.err = stateFailed, fmt.Errorf("start bulk indexer: %w", err)
		}
		return
	}
	for i, d := range docs {
		d.state, d.err, d.request = statePending, nil, nil
		err := bi.Add(ctx, esutil.BulkIndexerItem{
			Index:       d.index,
			Action:      "index",
			DocumentID:  d.id,
			Version:     &d.version,
			VersionType: "external",
			Body:        bytes.NewReader(d.body),
			OnSuccess:   d.onSuccess,
			OnFailure:   s.onFailure(d),
		})
		if err != nil {
			for _, d := range docs[i:] {
				d.state, d.err = stateFailed, err
			}
			break
		}
	}
	_ = bi.Close(context.WithoutCancel(ctx))
	tooLarge(docs)
}

// tooLarge rejects each document that was alone in a bulk request refused
// with 413: it is larger than Elasticsearch takes (http.max_content_length,
// 100 MB by default). The bulk indexer sends a document of FlushBytes or
// more alone.
func tooLarge(docs []*doc) {
	for _, d := range docs {
		if d.request == nil {
			continue
		}
		n := 0
		for _, o := range docs {
			if o.request == d.request {
				n++
			}
		}
		if n == 1 {
			var e *ESError
			errors.As(d.err, &e)
			d.state = stateRejected
			d.err = fmt.Errorf("a document of %d bytes is larger than Elasticsearch accepts (http.max_content_length): %w", len(d.body), e)
		}
	}
}

func (d *doc) onSuccess(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
	d.state = stateDone
}

// onFailure returns the callback that classifies a failure of d. err is
// set when the whole request failed (no answer, or not 2xx after the
// client's retries); res is the item's result otherwise.
func (s *Sink) onFailure(d *doc) func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem, error) {
	return func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
		if err != nil {
			d.state, d.err = stateFailed, s.requestError(err)
			var e *ESError
			if errors.As(d.err, &e) && e.Status == http.StatusRequestEntityTooLarge {
				d.request = err // the same for every item of the request
			}
			return
		}
		e := &ESError{Status: res.Status, Type: res.Error.Type, Reason: res.Error.Reason}
		if c := res.Error.Cause; c.Type != "" || c.Reason != "" {
			e.Reason = strings.TrimSpace(fmt.Sprintf("%s (caused by %s: %s)", e.Reason, c.Type, c.Reason))
		}
		d.err = e
		switch {
		case res.Status == http.StatusConflict:
			// version_conflict_engine_exception: the stored version is as
			// new or newer; this document was written before.
			d.state, d.err = stateDone, nil
		case res.Status == http.StatusTooManyRequests:
			d.state = stateAgain
		case res.Status == http.StatusBadRequest:
			d.state = stateRejected
		case res.Error.Type == "index_not_found_exception":
			d.state = stateFailed
			d.err = fmt.Errorf("%w: Elasticsearch does not create indices (action.auto_create_index): create it, or set index_settings", e)
		default:
			d.state = stateFailed
		}
	}
}

// requestError describes the failure of a whole bulk request. The bulk
// indexer reports a status that is not 2xx as "flush: [503 Service
// Unavailable] <body>", and other failures as "flush: <error>".
func (s *Sink) requestError(err error) error {
	rest, ok := strings.CutPrefix(err.Error(), "flush: [")
	if !ok {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return s.connError(err)
	}
	code, body, _ := strings.Cut(rest, "] ")
	status, _ := strconv.Atoi(strings.Fields(code + " x")[0])
	e := parseError(status, []byte(body))
	// Elasticsearch quotes the request's URL in some reasons.
	e.Reason = strings.ReplaceAll(e.Reason, filterQuery, "")
	if status == http.StatusRequestEntityTooLarge {
		return fmt.Errorf("elasticsearch %s: bulk request too large (%w): lower flush_bytes below http.max_content_length", s.addrs, e)
	}
	return s.statusError("bulk request", e)
}
