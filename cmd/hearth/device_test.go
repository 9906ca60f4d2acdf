package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/registry"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/config"
)

// startAgent runs an agent on cfg until the returned stop is called.
func startAgent(t testing.TB, cfg config.Config) (*agent, func()) {
	t.Helper()
	return startAgentLog(t, cfg, testLogger(t))
}

func startAgentLog(t testing.TB, cfg config.Config, log *slog.Logger) (*agent, func()) {
	t.Helper()
	a, err := newAgent(cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	t.Cleanup(stop)
	return a, stop
}

func hearthCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	if code != 0 {
		return out.String() + errb.String(), fmt.Errorf("hearth %s: exit %d", strings.Join(args, " "), code)
	}
	return out.String(), nil
}

var pwLine = regexp.MustCompile(`(?m)^MQTT password: (\S+)$`)

// cliConfig writes the configuration `hearth device --config` reads: the agent's
// data_dir and admin.token_file, where the CLI finds the admin token.
func cliConfig(t *testing.T, cfg config.Config) string {
	t.Helper()
	body := fmt.Sprintf("data_dir: %s\nsim:\n  enabled: false\n", cfg.DataDir)
	if cfg.Admin.TokenFile != "" {
		body += fmt.Sprintf("admin:\n  token_file: %s\n", cfg.Admin.TokenFile)
	}
	return writeFile(t, t.TempDir(), "hearth.yaml", body)
}

func mosquittoPub(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out), err
}

// The way a new user registers a device: `hearth device add` through the running
// agent (whose broker accepts it at once), mosquitto_pub with the printed password,
// the reading in /v1/devices; and after a restart the credential is still there.
func TestDeviceAddPublishRestart(t *testing.T) {
	cfg := testConfig(t)
	a, stop := startAgent(t, cfg)
	admin := a.adminLn.Addr().String()
	conf := cliConfig(t, cfg) // the CLI finds the agent's admin token through it
	out, err := hearthCLI(t, "device", "add", "kitchen-fridge", "--kind", "fridge", "--addr", admin, "--config", conf)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	m := pwLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password printed:\n%s", out)
	}
	pw := m[1]
	if _, err := hearthCLI(t, "device", "add", "kitchen-fridge", "--kind", "fridge", "--addr", admin, "--config", conf); err == nil {
		t.Error("adding the same device twice succeeded")
	}
	if out, err := mosquittoPub(t, a.brokerLn.Addr().String(), "-u", "kitchen-fridge", "-P", pw, "-q", "1",
		"-t", "hearth/v1/kitchen-fridge/readings", "-m", `{"signal":"door","value":1}`); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	var devs []store.DeviceInfo
	getJSON(t, "http://"+admin+"/v1/devices", &devs)
	if len(devs) != 1 || devs[0].ID != "kitchen-fridge" || devs[0].Readings != 1 {
		t.Fatalf("/v1/devices = %+v, want kitchen-fridge with 1 reading", devs)
	}
	// Only a hash is stored.
	var stored []byte
	_ = a.st.View(func(tx *store.Tx) error {
		c, err := tx.Credential("kitchen-fridge")
		if c != nil {
			stored, _ = json.Marshal(c)
		}
		return err
	})
	if len(stored) == 0 || bytes.Contains(stored, []byte(pw)) || !bytes.Contains(stored, []byte(`"hash":"$2`)) {
		t.Fatalf("stored credential %s: want a bcrypt hash and never the password", stored)
	}
	stop()

	// Restarted: the persisted credential lets the device in; removal locks it out.
	cfg.Broker.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	a2, _ := startAgent(t, cfg)
	admin2 := a2.adminLn.Addr().String()
	list, err := hearthCLI(t, "device", "list", "--addr", admin2, "--config", conf)
	if err != nil || !strings.Contains(list, "kitchen-fridge") || !strings.Contains(list, "fridge") {
		t.Fatalf("device list after restart: %v\n%s", err, list)
	}
	if out, err := mosquittoPub(t, a2.brokerLn.Addr().String(), "-u", "kitchen-fridge", "-P", pw, "-q", "1",
		"-t", "hearth/v1/kitchen-fridge/readings", "-m", `{"signal":"door","value":0}`); err != nil {
		t.Fatalf("mosquitto_pub after restart: %v: %s", err, out)
	}
	if out, err := hearthCLI(t, "device", "remove", "kitchen-fridge", "--addr", admin2, "--config", conf); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := mosquittoPub(t, a2.brokerLn.Addr().String(), "-u", "kitchen-fridge", "-P", pw, "-q", "1",
		"-t", "hearth/v1/kitchen-fridge/readings", "-m", `{"signal":"door","value":1}`); err == nil {
		t.Fatal("a removed device could still publish")
	}
}

// With no agent running, `hearth device add` writes the store directly, and the
// agent started afterwards accepts the device.
func TestDeviceAddWithoutAgent(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "hearth.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("data_dir: %s\nadmin:\n  listen: 127.0.0.1:1\nsim:\n  enabled: false\n", cfg.DataDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := hearthCLI(t, "device", "add", "washer", "--kind", "washer", "--config", cfgFile)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pw := pwLine.FindStringSubmatch(out)[1]
	a, _ := startAgent(t, cfg)
	if out, err := mosquittoPub(t, a.brokerLn.Addr().String(), "-u", "washer", "-P", pw, "-q", "1",
		"-t", "hearth/v1/washer/readings", "-m", `{"signal":"power","value":1800}`); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	if a.st.LastSeq() != 1 {
		t.Fatalf("store holds %d readings, want 1", a.st.LastSeq())
	}
}

// The TLS listener, beside plain TCP: mosquitto_pub over TLS with the hub's certificate.
func TestBrokerTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	cfg := testConfig(t)
	cfg.Broker.TLSListen = "127.0.0.1:0"
	cfg.Broker.TLSCertFile, cfg.Broker.TLSKeyFile = certFile, keyFile
	a, _ := startAgent(t, cfg)
	_, pw, err := a.creds.Add("oven1", "oven")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := mosquittoPub(t, a.tlsLn.Addr().String(), "--cafile", certFile, "-u", "oven1", "-P", pw, "-q", "1",
		"-t", "hearth/v1/oven1/readings", "-m", `{"signal":"temperature","value":180}`); err != nil {
		t.Fatalf("mosquitto_pub over TLS: %v: %s", err, out)
	}
	if a.st.LastSeq() != 1 {
		t.Fatalf("store holds %d readings, want 1", a.st.LastSeq())
	}
	// Plain MQTT on the TLS port is refused.
	if _, err := mosquittoPub(t, a.tlsLn.Addr().String(), "-u", "oven1", "-P", pw, "-q", "1",
		"-t", "hearth/v1/oven1/readings", "-m", `{"signal":"temperature","value":181}`); err == nil {
		t.Fatal("plain MQTT accepted on the TLS listener")
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hearth-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a log sink the agent's goroutines may write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// adminCall sends one request to the agent's admin API and returns the status, the
// WWW-Authenticate header and the body.
func adminCall(t *testing.T, method, url string, hdr map[string]string, body string) (int, string, string) {
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
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// Without the admin token nobody mints MQTT credentials, not even a web page posting
// cross-origin to the loopback address; with it the device is created and logs in.
func TestAdminTokenGuardsRegistry(t *testing.T) {
	cfg := testConfig(t)
	var logs lockedBuffer
	a, stop := startAgentLog(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if want := filepath.Join(cfg.DataDir, "admin.token"); a.tokenFile != want {
		t.Fatalf("token file %s, want %s (admin.token_file empty: admin.token in data_dir)", a.tokenFile, want)
	}
	raw, err := os.ReadFile(a.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	base := "http://" + a.adminLn.Addr().String()
	add := `{"device":"intruder","kind":"fridge"}`
	refused := []struct {
		name, method, path, body string
		hdr                      map[string]string
	}{
		{"no token", "POST", "/v1/registry", add, map[string]string{"Content-Type": "application/json"}},
		// A "simple" request: a browser sends it cross-origin without a preflight.
		{"cross-origin simple POST", "POST", "/v1/registry", add, map[string]string{"Content-Type": "text/plain", "Origin": "http://attacker.example"}},
		{"wrong token", "POST", "/v1/registry", add, map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}},
		{"list without token", "GET", "/v1/registry", "", nil},
		{"remove without token", "DELETE", "/v1/registry/intruder", "", nil},
		{"proposals without token", "GET", "/v1/proposals", "", nil},
		{"accept without token", "POST", "/v1/proposals/accept", `{"name":"x"}`, nil},
	}
	for _, c := range refused {
		code, challenge, body := adminCall(t, c.method, base+c.path, c.hdr, c.body)
		var e struct{ Error string }
		if code != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Bearer") || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d, WWW-Authenticate %q, body %q; want 401, a Bearer challenge and a JSON error", c.name, code, challenge, body)
		}
	}
	// Nothing was created, in the broker or in the store.
	if _, ok := a.creds.Kind("intruder"); ok {
		t.Fatal("a refused request registered a device with the broker")
	}
	if creds, _, err := registry.Load(a.st); err != nil || len(creds) != 0 {
		t.Fatalf("registry after refused requests: %+v %v, want empty", creds, err)
	}
	// With the token: 201, and the device logs in with the password it got.
	code, _, body := adminCall(t, "POST", base+"/v1/registry", map[string]string{"Authorization": "Bearer " + tok,
		"Content-Type": "application/json"}, `{"device":"oven1","kind":"oven"}`)
	var rep addReply
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &rep) != nil || rep.Password == "" {
		t.Fatalf("POST /v1/registry with the token: %d %q, want 201 and a password", code, body)
	}
	if out, err := mosquittoPub(t, a.brokerLn.Addr().String(), "-u", rep.Username, "-P", rep.Password, "-q", "1",
		"-t", rep.Topic, "-m", `{"signal":"temperature","value":180}`); err != nil {
		t.Fatalf("mosquitto_pub with the new credential: %v: %s", err, out)
	}
	if a.st.LastSeq() != 1 {
		t.Fatalf("store holds %d readings, want 1", a.st.LastSeq())
	}
	// Read-only routes stay open, and count the refusals by route.
	var devs []store.DeviceInfo
	getJSON(t, base+"/v1/devices", &devs)
	if len(devs) != 1 || devs[0].ID != "oven1" {
		t.Errorf("/v1/devices without a token: %+v, want oven1", devs)
	}
	metrics := getText(t, base+"/metrics")
	for _, want := range []string{`hearth_admin_unauthorized_total{route="POST /v1/registry"} 3`,
		`hearth_admin_unauthorized_total{route="DELETE /v1/registry/{device}"} 1`,
		`hearth_admin_unauthorized_total{route="POST /v1/proposals/accept"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	stop()
	if l := logs.String(); !strings.Contains(l, a.tokenFile) || strings.Contains(l, tok) {
		t.Errorf("the log should name the token file and never hold the token:\n%s", l)
	}
}

// The token file is made 0600 at the first start and reused at the next; one that
// group or others can read, or that is empty or short, stops the agent with the
// file named and the fix.
func TestAdminTokenFileLifecycle(t *testing.T) {
	cfg := testConfig(t)
	a, stop := startAgent(t, cfg)
	path := a.tokenFile
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("made with mode %04o, want 0600", fi.Mode().Perm())
	}
	first, _ := os.ReadFile(path)
	stop()

	a2, stop2 := startAgent(t, cfg)
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Fatalf("second start rewrote the token: %q, was %q", again, first)
	}
	code, _, body := adminCall(t, "POST", "http://"+a2.adminLn.Addr().String()+"/v1/registry",
		map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(first))}, `{"device":"washer","kind":"washer"}`)
	if code != http.StatusCreated {
		t.Fatalf("the first start's token at the second start: %d %q, want 201", code, body)
	}
	stop2() // it holds the store's lock

	conf := writeFile(t, t.TempDir(), "hearth.yaml", fmt.Sprintf("data_dir: %s\nbroker:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nsim:\n  enabled: false\n", cfg.DataDir))
	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"readable by all", string(first), 0o644, "admin.token_file: unusable admin token file: " + path + " is open to group or others (mode 0644); only its owner may read it: run `chmod 600 " + path + "`"},
		{"empty", "", 0o600, "admin.token_file: unusable admin token file: " + path + " is empty"},
		{"short", "abc\n", 0o600, path + " holds 3 characters, fewer than 32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCLI(t, "run", "--config", conf)
			if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line containing %q", code, errs, c.want)
			}
			if b, _ := os.ReadFile(path); string(b) != c.content {
				t.Error("the refused token file was replaced")
			}
		})
	}
}

// `hearth device` finds the token through admin.token_file of --config (here outside
// data_dir), or --token-file; a missing or wrong token is an error that names the
// file and says what to pass, and changes nothing.
func TestDeviceCLITokenFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.Admin.TokenFile = filepath.Join(t.TempDir(), "hearth-admin.token")
	a, _ := startAgent(t, cfg)
	if _, err := os.Stat(cfg.Admin.TokenFile); err != nil {
		t.Fatalf("admin.token_file not made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "admin.token")); err == nil {
		t.Fatal("a token was made in data_dir although admin.token_file is set")
	}
	addr := a.adminLn.Addr().String()
	if out, err := hearthCLI(t, "device", "add", "fridge1", "--kind", "fridge", "--addr", addr, "--config", cliConfig(t, cfg)); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	missing := filepath.Join(t.TempDir(), "none.token")
	wrong := filepath.Join(t.TempDir(), "other.token") // another hub's token
	if _, _, err := admin.LoadOrCreateToken(wrong); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{missing, "hearth: device add: the agent at " + addr + " needs its admin token, and " + missing +
			" does not exist: pass --config with the agent's configuration, or --token-file"},
		{wrong, "hearth: device add: the agent at " + addr + " refused the admin token in " + wrong +
			" (is it this agent's admin.token_file? pass --config with its configuration, or --token-file)"},
	} {
		code, _, errs := runCLI(t, "device", "add", "fridge2", "--kind", "fridge", "--addr", addr, "--token-file", c.file)
		if code != 1 || strings.TrimSpace(errs) != c.want {
			t.Errorf("--token-file %s: exit %d, stderr %q; want exit 1 and %q", c.file, code, errs, c.want)
		}
	}
	if _, ok := a.creds.Kind("fridge2"); ok {
		t.Error("fridge2 was registered without the right token")
	}
}

// A household member without the rights to read the token is told so, and what to
// do, instead of an opaque 401.
func TestDeviceCLITokenUnreadable(t *testing.T) {
	cfg := testConfig(t)
	a, _ := startAgent(t, cfg)
	args := []string{"device", "add", "fridge1", "--kind", "fridge", "--addr", a.adminLn.Addr().String(), "--token-file", a.tokenFile}
	var code int
	var errs string
	if os.Geteuid() == 0 {
		// root reads every file: run the command as nobody, as a user without sudo would.
		code, errs = runCLIAsNobody(t, args...)
	} else {
		if err := os.Chmod(a.tokenFile, 0); err != nil {
			t.Fatal(err)
		}
		code, _, errs = runCLI(t, args...)
	}
	want := "hearth: device add: admin token " + a.tokenFile + ": permission denied — run as the user hearth runs as, or as root"
	if code != 1 || strings.TrimSpace(errs) != want {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errs, want)
	}
	if _, ok := a.creds.Kind("fridge1"); ok {
		t.Error("fridge1 was registered")
	}
}

// runCLIAsNobody runs `hearth args...` in a copy of this test binary as user and group
// 65534 (TestCLIHelperProcess), and returns its exit status and stderr.
func runCLIAsNobody(t *testing.T, args ...string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hearth-cli-nobody-") // t.TempDir's parents are closed to others
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hearth.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-test.run=^TestCLIHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "HEARTH_TEST_CLI_HELPER=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Skipf("cannot run a process as nobody here: %v", err)
	return 0, ""
}

// TestCLIHelperProcess is `hearth` for runCLIAsNobody; it does nothing in a normal run.
func TestCLIHelperProcess(t *testing.T) {
	if os.Getenv("HEARTH_TEST_CLI_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(context.Background(), args, io.Discard, os.Stderr))
}
