// Package admin is hearth's local HTTP API: health, readiness, Prometheus metrics,
// devices, tags and status as JSON. `hearth status` and `hearth tags` are its clients:
// the running agent owns the store's file lock, so other processes ask it.
//
//	GET /healthz        200 "ok" while the process serves
//	GET /readyz         200 when every component is up and intake is open, else 503 with why
//	GET /metrics        Prometheus text format
//	GET /v1/status      JSON: version, uptime, store, pipeline counters
//	GET /v1/devices     JSON list of devices
//	GET /v1/tags        JSON list of tags
//	GET /v1/tags/{name} JSON of one tag, with its evidence (404 if unknown)
//
// The agent adds the device registry (see cmd/hearth/device.go):
//
//	GET    /v1/registry            registered devices (credentials, never hashes) and accepted mappings
//	POST   /v1/registry            {"device":..,"kind":..}: a new device credential; the password is in the reply, once
//	DELETE /v1/registry/{device}   remove a device's credential
//	GET    /v1/proposals           mappings proposed by Home Assistant MQTT discovery
//	POST   /v1/proposals/accept    {"name":..,"device":..,"kind":..}: accept one, persisted
package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are what the API reports; each function is called per request and must be
// safe for concurrent use.
type Sources struct {
	Gatherer prometheus.Gatherer
	Ready    func() error // nil error: ready
	Status   func() any
	Devices  func() any
	Tags     func() []any
	TagName  func(v any) string
	// Routes are further handlers by pattern ("POST /v1/devices"), for what the
	// agent wires in (cmd/hearth/device.go: device registry and discovery).
	Routes map[string]http.Handler
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
}

// Handler returns the API's handler.
func Handler(s Sources) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Status()) })
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Devices()) })
	mux.HandleFunc("GET /v1/tags", func(w http.ResponseWriter, _ *http.Request) {
		tags := s.Tags()
		if tags == nil {
			tags = []any{}
		}
		writeJSON(w, http.StatusOK, tags)
	})
	mux.HandleFunc("GET /v1/tags/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, t := range s.Tags() {
			if s.TagName(t) == name {
				writeJSON(w, http.StatusOK, t)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no tag named " + name})
	})
	if s.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range s.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// NewServer returns an http.Server for h with timeouts fit for a LAN-facing hub.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}
