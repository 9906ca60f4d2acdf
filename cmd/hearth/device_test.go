package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/config"
)

// startAgent runs an agent on cfg until the returned stop is called.
func startAgent(t *testing.T, cfg config.Config) (*agent, func()) {
	t.Helper()
	a, err := newAgent(cfg, testLogger(t), io.Discard)
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
	out, err := hearthCLI(t, "device", "add", "kitchen-fridge", "--kind", "fridge", "--addr", admin)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	m := pwLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password printed:\n%s", out)
	}
	pw := m[1]
	if _, err := hearthCLI(t, "device", "add", "kitchen-fridge", "--kind", "fridge", "--addr", admin); err == nil {
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
		stored = append(stored, tx.Get(store.Credentials, []byte("device/kitchen-fridge"))...)
		return nil
	})
	if len(stored) == 0 || bytes.Contains(stored, []byte(pw)) || !bytes.Contains(stored, []byte(`"hash":"$2`)) {
		t.Fatalf("stored credential %s: want a bcrypt hash and never the password", stored)
	}
	stop()

	// Restarted: the persisted credential lets the device in; removal locks it out.
	cfg.Broker.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	a2, _ := startAgent(t, cfg)
	admin2 := a2.adminLn.Addr().String()
	list, err := hearthCLI(t, "device", "list", "--addr", admin2)
	if err != nil || !strings.Contains(list, "kitchen-fridge") || !strings.Contains(list, "fridge") {
		t.Fatalf("device list after restart: %v\n%s", err, list)
	}
	if out, err := mosquittoPub(t, a2.brokerLn.Addr().String(), "-u", "kitchen-fridge", "-P", pw, "-q", "1",
		"-t", "hearth/v1/kitchen-fridge/readings", "-m", `{"signal":"door","value":0}`); err != nil {
		t.Fatalf("mosquitto_pub after restart: %v: %s", err, out)
	}
	if out, err := hearthCLI(t, "device", "remove", "kitchen-fridge", "--addr", admin2); err != nil {
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
