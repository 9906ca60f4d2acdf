package admin

import (
	"errors"
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
