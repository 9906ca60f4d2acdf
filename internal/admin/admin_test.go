package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type tag struct{ Name string }

func serve(t *testing.T, s Sources) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(s))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	notReady := errors.New("store intake stopped: disk full")
	var ready error
	tags := []any{tag{"habit.a"}, tag{"routine.b"}}
	srv := serve(t, Sources{Gatherer: prometheus.NewRegistry(), Ready: func() error { return ready },
		Status: func() any { return map[string]int{"devices": 2} }, Devices: func() any { return []string{"f"} },
		Tags: func() []any { return tags }, TagName: func(v any) string { return v.(tag).Name }})
	if code, body := get(t, srv.URL+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	ready = notReady
	if code, body := get(t, srv.URL+"/readyz"); code != 503 || !strings.Contains(body, "disk full") {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/v1/tags/routine.b"); code != 200 || !strings.Contains(body, `"Name": "routine.b"`) {
		t.Errorf("/v1/tags/routine.b: %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/v1/tags/nope"); code != 404 || !strings.Contains(body, "no tag named nope") {
		t.Errorf("/v1/tags/nope: %d %q", code, body)
	}
	tags = nil
	if code, body := get(t, srv.URL+"/v1/tags"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("/v1/tags with none: %d %q (want an empty list, not null)", code, body)
	}
	if code, _ := get(t, srv.URL+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without admin.pprof: %d", code)
	}
	if code, _ := get(t, srv.URL+"/v1/status"); code != 200 {
		t.Errorf("/v1/status: %d", code)
	}
}

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// guarded serves the open routes plus two agent routes that record whether they ran.
func guarded(t *testing.T, token string) (srv *httptest.Server, ran *[]string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	ran = new([]string)
	record := func(w http.ResponseWriter, r *http.Request) {
		*ran = append(*ran, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusCreated)
	}
	srv = serve(t, Sources{Gatherer: reg, Registerer: reg, Ready: func() error { return nil }, Token: token,
		Status: func() any { return map[string]int{} }, Devices: func() any { return []string{} },
		Tags: func() []any { return nil }, TagName: func(v any) string { return "" },
		Routes: map[string]http.Handler{"POST /v1/registry": http.HandlerFunc(record), "GET /v1/registry": http.HandlerFunc(record)}})
	return srv, ran
}

func do(t *testing.T, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The agent's routes need the token, whatever the method; a refusal is a 401 with a
// JSON error and a Bearer challenge, counted by route, and the handler never runs.
func TestTokenGuardsRoutes(t *testing.T) {
	srv, ran := guarded(t, testToken)
	reg := srv.URL + "/v1/registry"
	refusals := []struct {
		name        string
		method      string
		hdr         map[string]string
		wantInvalid bool // error="invalid_token" in the challenge: a token was sent, and it is wrong
	}{
		{"no header", "POST", map[string]string{"Content-Type": "application/json"}, false},
		{"GET needs it too", "GET", nil, false},
		{"wrong token", "POST", map[string]string{"Authorization": "Bearer " + strings.Repeat("f", 64)}, true},
		{"a prefix of the token", "POST", map[string]string{"Authorization": "Bearer " + testToken[:32]}, true},
		{"the token with more after it", "POST", map[string]string{"Authorization": "Bearer " + testToken + "0"}, true},
		{"another scheme", "POST", map[string]string{"Authorization": "Basic " + testToken}, true},
		{"empty bearer", "POST", map[string]string{"Authorization": "Bearer "}, true},
		// What a web page can send cross-origin without a preflight (CSRF).
		{"cross-origin simple POST", "POST", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, false},
	}
	for _, c := range refusals {
		resp, body := do(t, c.method, reg, c.hdr, `{"device":"x","kind":"fridge"}`)
		var e struct{ Error string }
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q, want 401 with a JSON error", c.name, resp.StatusCode, body)
		}
		ch := resp.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(ch, "Bearer ") || strings.Contains(ch, "invalid_token") != c.wantInvalid {
			t.Errorf("%s: WWW-Authenticate %q", c.name, ch)
		}
		if strings.Contains(body, testToken[:16]) {
			t.Errorf("%s: the reply holds the token: %s", c.name, body)
		}
	}
	if len(*ran) != 0 {
		t.Fatalf("a refused request reached its handler: %v", *ran)
	}
	for _, auth := range []string{"Bearer " + testToken, "bearer  " + testToken + " "} {
		if resp, body := do(t, "POST", reg, map[string]string{"Authorization": auth}, "{}"); resp.StatusCode != http.StatusCreated {
			t.Errorf("Authorization %q: %d %q, want 201", auth, resp.StatusCode, body)
		}
	}
	if len(*ran) != 2 {
		t.Errorf("handler ran %d times with the token, want 2", len(*ran))
	}
	// The open routes stay open, and say how many were refused.
	_, metrics := get(t, srv.URL+"/metrics")
	for _, want := range []string{`hearth_admin_unauthorized_total{route="POST /v1/registry"} 7`,
		`hearth_admin_unauthorized_total{route="GET /v1/registry"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/v1/status", "/v1/devices", "/v1/tags"} {
		if code, _ := get(t, srv.URL+p); code != 200 {
			t.Errorf("GET %s without a token: %d, want 200", p, code)
		}
	}
}

// A method other than GET or HEAD needs the token on every path, routed or not, so
// a state-changing route added later is guarded without being listed.
func TestTokenGuardsEveryWrite(t *testing.T) {
	srv, _ := guarded(t, testToken)
	for _, p := range []string{"/healthz", "/v1/tags", "/nowhere"} {
		if resp, body := do(t, "POST", srv.URL+p, nil, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without a token: %d %q, want 401", p, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, "HEAD", srv.URL+"/healthz", nil, ""); resp.StatusCode != 200 {
		t.Errorf("HEAD /healthz: %d, want 200", resp.StatusCode)
	}
	_, metrics := get(t, srv.URL+"/metrics")
	if !strings.Contains(metrics, `hearth_admin_unauthorized_total{route="unmatched"} 3`) {
		t.Errorf("/metrics lacks the unmatched refusal:\n%s", metrics)
	}
}

// With no token configured nothing that needs one gets through, not even a request
// that sends an empty one.
func TestEmptyTokenRefusesAll(t *testing.T) {
	srv, ran := guarded(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if resp, _ := do(t, "POST", srv.URL+"/v1/registry", map[string]string{"Authorization": auth}, "{}"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q with no token configured: %d, want 401", auth, resp.StatusCode)
		}
	}
	if len(*ran) != 0 {
		t.Errorf("handler ran: %v", *ran)
	}
}

// GET /v1/devices/{id}/readings: open (no token), last= checked against ReadingsMax,
// a device the source does not know is a 404 with its message.
func TestReadingsRoute(t *testing.T) {
	var asked []ReadingsQuery
	srv := serve(t, Sources{Gatherer: prometheus.NewRegistry(), Ready: func() error { return nil }, Token: testToken,
		Status: func() any { return nil }, Devices: func() any { return nil }, Tags: func() []any { return nil },
		TagName: func(any) string { return "" }, ReadingsMax: 50,
		Readings: func(id string, q ReadingsQuery) (any, error) {
			asked = append(asked, q)
			switch {
			case id != "kitchen-fridge":
				return nil, fmt.Errorf("device %q: %w: no reading of it is stored", id, ErrNotFound)
			case q.Signal == "smell":
				return nil, fmt.Errorf("signal %q: %w", q.Signal, ErrBadRequest)
			}
			return map[string]any{"device": id, "last": q.Last}, nil
		}})
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/v1/devices/kitchen-fridge/readings", 200, `"last": 10`},
		{"/v1/devices/kitchen-fridge/readings?last=50&signal=door", 200, `"last": 50`},
		{"/v1/devices/kitchen-fridge/readings?last=51", 400, "from 1 to 50 (admin.readings_max)"},
		{"/v1/devices/kitchen-fridge/readings?last=0", 400, "from 1 to 50"},
		{"/v1/devices/kitchen-fridge/readings?last=x", 400, "last=x"},
		{"/v1/devices/kitchen-fridge/readings?signal=smell", 400, `signal \"smell\"`},
		{"/v1/devices/kitchen-fridg/readings", 404, `device \"kitchen-fridg\": not found: no reading of it is stored`},
	} {
		code, body := get(t, srv.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("GET %s: %d %s, want %d with %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	if want := []ReadingsQuery{{10, ""}, {50, "door"}, {10, "smell"}, {10, ""}}; len(asked) != len(want) || asked[1] != want[1] {
		t.Errorf("asked %+v, want %+v (a bad last= never reaches the source)", asked, want)
	}
}
