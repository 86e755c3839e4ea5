package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/providers"
)

// metricsHandler serves set, with HELP and TYPE lines, plus the Go runtime
// and process metrics, in the Prometheus text format.
func metricsHandler(set *metrics.Set) http.Handler {
	metrics.ExposeMetadata(true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
}

// serveMetrics serves /metrics alone on its own address (server.metrics_listen).
func serveMetrics(addr string, set *metrics.Set, stdout io.Writer, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(set))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", slog.Any("err", err))
		}
	}()
	fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ln.Addr())
	return func() { srv.Close(); <-done }, nil
}

// storeObserver records every store call's latency and errors by operation.
func storeObserver(set *metrics.Set) persistence.Observer {
	return func(op string, took time.Duration, err error) {
		set.GetOrCreatePrometheusHistogram(`chatbox_store_seconds{op="` + op + `"}`).Update(took.Seconds())
		if err != nil && !errors.Is(err, persistence.ErrNotFound) {
			set.GetOrCreateCounter(`chatbox_store_errors_total{op="` + op + `"}`).Inc()
		}
	}
}

// batchObserver records the size of each group commit of the embedded
// store: how many writes shared one transaction. Nil without a set.
func batchObserver(set *metrics.Set) func(n int) {
	if set == nil {
		return nil
	}
	sizes := set.NewPrometheusHistogramExt("chatbox_store_batch_writes", metrics.ExponentialBuckets(1, 2, 9))
	return func(n int) { sizes.Update(float64(n)) }
}

// registerCatalogMetrics exposes the catalog's cumulative counts of
// provider attempts, retries, failovers and circuit-breaker decisions.
func registerCatalogMetrics(set *metrics.Set, c *providers.Catalog) {
	set.RegisterMetricsWriter(func(w io.Writer) {
		st := c.Stats()
		for _, m := range []struct {
			name, help string
			v          uint64
		}{
			{"chatbox_provider_attempts_total", "Provider requests made, retries and failovers included.", st.Attempts},
			{"chatbox_provider_retries_total", "Provider requests retried before the first token.", st.Retries},
			{"chatbox_provider_failovers_total", "Generations that moved to a fallback model.", st.Failovers},
			{"chatbox_provider_breaker_opens_total", "Times a model's circuit breaker opened.", st.BreakerOpens},
			{"chatbox_provider_fail_fast_total", "Requests refused at once by an open circuit breaker.", st.FailFasts},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
	})
}
