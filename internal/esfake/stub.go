package esfake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// Stub is a handler that answers like Elasticsearch and accepts everything
// without storing or checking it: every bulk item 201, every _mget document
// not found, anything else {}. Benchmarks use it to measure a client, not an
// indexer. OnItem, if set, is called with the index and id of each bulk
// item as its request arrives (concurrently: it must be safe for that).
type Stub struct {
	OnItem func(index, id string)
}

// ServeHTTP implements http.Handler.
func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	var out bytes.Buffer
	switch r.URL.Path {
	case "/_bulk":
		lines := bytes.Split(bytes.TrimRight(body, "\n"), []byte("\n"))
		out.WriteString(`{"errors":false,"items":[`)
		for i := 0; i+1 < len(lines); i += 2 {
			if s.OnItem != nil {
				var action map[string]struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				}
				if json.Unmarshal(lines[i], &action) == nil {
					for _, a := range action {
						s.OnItem(a.Index, a.ID)
					}
				}
			}
			if i > 0 {
				out.WriteByte(',')
			}
			out.WriteString(`{"index":{"status":201}}`)
		}
		out.WriteString(`]}`)
	case "/_mget":
		var req struct {
			Docs []map[string]any `json:"docs"`
		}
		_ = json.Unmarshal(body, &req)
		out.WriteString(`{"docs":[`)
		for i, d := range req.Docs {
			if i > 0 {
				out.WriteByte(',')
			}
			d["found"] = false
			b, _ := json.Marshal(d)
			out.Write(b)
		}
		out.WriteString(`]}`)
	case "/":
		out.WriteString(`{"version":{"number":"8.19.0"},"tagline":"You Know, for Search"}`)
	default:
		out.WriteString(`{}`)
	}
	_, _ = w.Write(out.Bytes())
}
