package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A new user checks a device: the last values published with mosquitto_pub, newest
// first, from the command line and from the API, without the admin token.
func TestReadingsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	mq := startMosquitto(t)
	cfg := withFridgeDoor(externalConfig(t, mq))
	cfg.Admin.ReadingsMax = 50
	a, _ := startAgent(t, cfg)
	waitSubscribed(t, a)
	for i, p := range []string{`{"contact":false,"battery":91}`, `{"contact":true,"temperature":"4.5"}`, `{"contact":false,"temperature":3.9}`, `{"contact":true,"power":85}`} {
		if out, err := mosquittoPub(t, mq, "-q", "1", "-t", fridgeDoorTopic, "-m", p); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, out)
		}
	}
	waitFor(t, "the readings", 10*time.Second, func() bool { return a.st.LastSeq() == 8 })
	admin := a.adminLn.Addr().String()
	out, err := hearthCLI(t, "readings", "kitchen-fridge", "--last", "5", "--addr", admin)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{ // newest first; within a message, the adapter's property order (contact, power, temperature)
		{"power", "85", "W"}, {"door", "0 (closed)"}, {"temperature", "3.9", "°C"}, {"door", "1 (open)"}, {"temperature", "4.5", "°C"},
	}
	if len(lines) != 2+len(want) || lines[0] != "kitchen-fridge (fridge): the last 5 readings, newest first" || !strings.HasPrefix(lines[1], "TIME") {
		t.Fatalf("hearth readings --last 5:\n%s", out)
	}
	for i, w := range want {
		for _, field := range w {
			if !strings.Contains(lines[2+i], field) {
				t.Errorf("line %d %q lacks %q", i+1, lines[2+i], field)
			}
		}
	}
	t.Logf("hearth readings kitchen-fridge --last 5:\n%s", out)

	// The API, as JSON, with a signal.
	var rep ReadingsReply
	getJSON(t, "http://"+admin+"/v1/devices/kitchen-fridge/readings?last=10&signal=battery", &rep)
	if rep.Device != "kitchen-fridge" || rep.Kind != "fridge" || len(rep.Readings) != 1 || rep.Readings[0].Value != 91 ||
		rep.Readings[0].Label != "Fridge Door" || !rep.Complete || rep.Examined != 8 {
		t.Errorf("battery readings %+v", rep)
	}
	out, err = hearthCLI(t, "readings", "--json", "--signal", "temperature", "--addr", admin, "kitchen-fridge")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Readings) != 2 || rep.Readings[0].Value != 3.9 || rep.Readings[1].Value != 4.5 {
		t.Errorf("--json --signal temperature: %v\n%s", err, out)
	}
	// What a person gets wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"readings", "kitchen-fridg"}, `device "kitchen-fridg": not found: no reading of it is stored`},
		{[]string{"readings", "kitchen-fridge", "--last", "51"}, "last=51: want a number from 1 to 50 (admin.readings_max)"},
		{[]string{"readings", "kitchen-fridge", "--signal", "smell"}, `signal "smell": bad request: want one of door, active`},
		{[]string{"readings"}, "readings takes one DEVICE"},
	} {
		out, err := hearthCLI(t, append(tc.args, "--addr", admin)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("hearth %s: %v\n%s\nwant an error with %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	code, _, body := adminCall(t, http.MethodGet, fmt.Sprintf("http://%s/v1/devices/nope/readings", admin), nil, "")
	if code != http.StatusNotFound || !strings.Contains(body, `device \"nope\": not found`) {
		t.Errorf("GET an unknown device: %d %s, want 404 naming it", code, body)
	}
}
