// Package admin is hearth's local HTTP API: health, readiness, Prometheus metrics,
// devices, tags and status as JSON. `hearth status` and `hearth tags` are its clients:
// the running agent owns the store's file lock, so other processes ask it.
//
// These read-only routes are open (Prometheus scrapes them):
//
//	GET /healthz        200 "ok" while the process serves
//	GET /readyz         200 when every component is up, intake is open and the disk has room for
//	                    the store's next commits; else 503 with why; 200 "ready (degraded: …)" when
//	                    the hub works but something needs a person (upstream delivery paused by a
//	                    refused write key)
//	GET /metrics        Prometheus text format
//	GET /v1/status      JSON: version, uptime, store, pipeline counters
//	GET /v1/devices     JSON list of devices
//	GET /v1/devices/{id}/readings?last=N&signal=S
//	                    JSON: the device's last N readings (default 10, at most
//	                    Sources.ReadingsMax), newest first, of signal S when given;
//	                    404 for a device with no stored reading, 400 for a bad N or S.
//	                    Raw readings: keep admin.listen on loopback.
//	GET /v1/tags        JSON list of tags
//	GET /v1/tags/{name} JSON of one tag, with its evidence (404 if unknown)
//
// The agent adds the device registry (see cmd/hearth/device.go). These routes, and a
// request of any method other than GET or HEAD to any path, need the admin token
// (see [LoadOrCreateToken]) as "Authorization: Bearer <token>"; without it the reply
// is 401 with a JSON error and "WWW-Authenticate: Bearer", counted in
// hearth_admin_unauthorized_total{route}. A web page in the household's browser can
// send a "simple" cross-origin POST to 127.0.0.1 without a preflight, but it cannot
// add that header nor read the token, so it cannot mint credentials (CSRF):
//
//	GET    /v1/registry            registered devices (credentials, never hashes) and accepted mappings
//	POST   /v1/registry            {"device":..,"kind":..}: a new device credential; the password is in the reply, once
//	DELETE /v1/registry/{device}   remove a device's credential
//	GET    /v1/proposals           mappings proposed by Home Assistant MQTT discovery
//	POST   /v1/proposals/accept    {"name":..,"device":..,"kind":..}: accept one, persisted
//
// /debug/pprof/ is served only with admin.pprof (off by default), without the token.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hearth-iot/hearth/internal/metricset"
)

// Sources are what the API reports; each function is called per request and must be
// safe for concurrent use.
type Sources struct {
	Gatherer prometheus.Gatherer
	Ready    func() error // nil error: ready
	// Degraded says what needs a person while the hub is ready (nil or "": nothing).
	Degraded func() string
	Status   func() any
	Devices  func() any
	Tags     func() []any
	TagName  func(v any) string
	// Routes are further handlers by pattern ("POST /v1/devices"), for what the
	// agent wires in (cmd/hearth/device.go: device registry and discovery). Every
	// one of them needs Token, whatever its method.
	Routes map[string]http.Handler
	// OpenRoutes are further read-only handlers by pattern ("GET /v1/audit"): open
	// like /v1/tags (a request other than GET or HEAD still needs the token).
	OpenRoutes map[string]http.Handler
	// Token is the bearer token that Routes, and every request whose method is not
	// GET or HEAD, must carry. Empty: no such request is let through.
	Token string
	// Registerer takes hearth_admin_unauthorized_total; nil: not registered.
	Registerer prometheus.Registerer
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Readings answers GET /v1/devices/{id}/readings with the last readings of a
	// device (q checked: 1 <= q.Last <= ReadingsMax). An error wrapping ErrNotFound
	// is a 404, ErrBadRequest a 400, any other a 500. nil: no such route.
	Readings func(id string, q ReadingsQuery) (any, error)
	// ReadingsMax bounds last= (default DefaultReadingsMax).
	ReadingsMax int
}

// DefaultReadingsMax is Sources.ReadingsMax when it is zero: the one place it is
// written (internal/config's admin.readings_max default is this).
const DefaultReadingsMax = 1000

// ReadingsQuery is what GET /v1/devices/{id}/readings asks for.
type ReadingsQuery struct {
	Last   int    // how many readings, newest first
	Signal string // only this signal; "" for every signal
}

// Errors a Readings function returns to choose the status code.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// defaultLast is N of /v1/devices/{id}/readings without last=.
const defaultLast = 10

func readingsHandler(s Sources) http.HandlerFunc {
	max := s.ReadingsMax
	if max <= 0 {
		max = DefaultReadingsMax
	}
	return func(w http.ResponseWriter, r *http.Request) {
		q := ReadingsQuery{Last: defaultLast, Signal: r.URL.Query().Get("signal")}
		if v := r.URL.Query().Get("last"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > max {
				WriteJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("last=%s: want a number from 1 to %d (admin.readings_max)", v, max)})
				return
			}
			q.Last = n
		}
		out, err := s.Readings(r.PathValue("id"), q)
		switch {
		case errors.Is(err, ErrNotFound):
			WriteError(w, http.StatusNotFound, err)
		case errors.Is(err, ErrBadRequest):
			WriteError(w, http.StatusBadRequest, err)
		case err != nil:
			WriteError(w, http.StatusInternalServerError, err)
		default:
			WriteJSON(w, http.StatusOK, out)
		}
	}
}

// Handler returns the API's handler. It registers hearth_admin_unauthorized_total
// with s.Registerer, and panics if that name is taken there (one handler per
// registry).
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
		if s.Degraded != nil {
			if why := s.Degraded(); why != "" {
				_, _ = w.Write([]byte("ready (degraded: " + why + ")\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, http.StatusOK, s.Status()) })
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, http.StatusOK, s.Devices()) })
	if s.Readings != nil {
		mux.HandleFunc("GET /v1/devices/{id}/readings", readingsHandler(s))
	}
	mux.HandleFunc("GET /v1/tags", func(w http.ResponseWriter, _ *http.Request) {
		tags := s.Tags()
		if tags == nil {
			tags = []any{}
		}
		WriteJSON(w, http.StatusOK, tags)
	})
	mux.HandleFunc("GET /v1/tags/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, t := range s.Tags() {
			if s.TagName(t) == name {
				WriteJSON(w, http.StatusOK, t)
				return
			}
		}
		WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no tag named " + name})
	})
	if s.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	for pattern, h := range s.OpenRoutes {
		mux.Handle(pattern, h)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_admin_unauthorized_total",
		Help: "Admin API requests refused for a missing or wrong bearer token, by route pattern (\"unmatched\": no route)."},
		[]string{"route"})
	protected := make(map[string]bool, len(s.Routes))
	for pattern, h := range s.Routes {
		mux.Handle(pattern, h)
		protected[pattern] = true
		refused.WithLabelValues(pattern) // reported as 0 from the start
	}
	metricset.Must(s.Registerer, refused)
	return &guard{mux: mux, protected: protected, want: sha256.Sum256([]byte(s.Token)), empty: s.Token == "",
		refused: refused}
}

// guard lets a request reach mux only if its route is open or it carries the token.
type guard struct {
	mux       *http.ServeMux
	protected map[string]bool // patterns that need the token, whatever the method
	want      [32]byte        // sha256 of the token: compared in constant time, whatever the length sent
	empty     bool            // no token configured: refuse every request that needs one
	refused   *prometheus.CounterVec
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := g.mux.Handler(r)
	if g.protected[pattern] || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		if msg := g.check(r); msg != "" {
			if pattern == "" {
				pattern = "unmatched"
			}
			g.refused.WithLabelValues(pattern).Inc()
			challenge := `Bearer realm="hearth admin"`
			if r.Header.Get("Authorization") != "" {
				challenge += `, error="invalid_token"` // RFC 6750 §3.1
			}
			w.Header().Set("WWW-Authenticate", challenge)
			WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
			return
		}
	}
	g.mux.ServeHTTP(w, r)
}

// check returns why r is not authorised, or "" when it carries the token. The
// token is never part of the answer nor logged.
func (g *guard) check(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return r.Method + " " + r.URL.Path + " needs the admin token: send \"Authorization: Bearer TOKEN\", TOKEN being the content of admin.token_file (`hearth device` does)"
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "the Authorization header is not \"Bearer TOKEN\""
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if g.empty || subtle.ConstantTimeCompare(got[:], g.want[:]) != 1 {
		return "wrong admin token (it is the content of admin.token_file on the hub)"
	}
	return ""
}

// WriteJSON writes v as indented JSON with the status code: the one way every route
// of the admin API, here and in cmd/hearth, answers.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers {"error": err} with the status code.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}

// NewServer returns an http.Server for h with timeouts fit for a LAN-facing hub.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}
