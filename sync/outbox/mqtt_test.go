package outbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/edge/store/storetest"
	"github.com/hearth-iot/hearth/internal/mosquittotest"
	"github.com/hearth-iot/hearth/internal/poll"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/transport"
	"github.com/hearth-iot/hearth/sync/transport/syncpb"
)

// pki is a CA with a server certificate for 127.0.0.1 and client certificates,
// written as PEM files.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cloud CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.serial = 1
	p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a certificate (server: for 127.0.0.1) and returns its cert and key files.
func (p *pki) issue(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kb)
}

// startCloudBroker runs a real mosquitto that takes only TLS clients with a
// certificate of the test's CA, and keeps sessions across a restart (as a cloud
// broker does).
func startCloudBroker(t *testing.T, p *pki) *mosquittotest.Broker {
	t.Helper()
	cert, key := p.issue(t, "broker", true)
	return mosquittotest.Run(t, &mosquittotest.Options{Persistent: true, Extra: []string{
		"cafile " + filepath.Join(p.dir, "ca.pem"), "certfile " + cert, "keyfile " + key,
		"require_certificate true", "use_identity_as_username true"}})
}

// The MQTT uplink to a real TLS broker with client certificates, restarted in the
// middle of the stream: every summary arrives (a batch leaves the outbox only after
// its PUBACK), duplicates stay within the window in flight at the restart, and the
// payload is within the broker limit.
func TestMQTTUplinkThroughBrokerRestart(t *testing.T) {
	p := newPKI(t)
	br := startCloudBroker(t, p)
	hubCert, hubKey := p.issue(t, "hub", false)
	tr, err := transport.NewMQTT(transport.MQTTOptions{Broker: "tls://" + br.Addr, ClientID: "hub-1", Window: 4,
		TLS:   transport.TLSFiles{CAFile: filepath.Join(p.dir, "ca.pem"), CertFile: hubCert, KeyFile: hubKey},
		Topic: "makers/acme/{household}/summaries", Version: "test", ConnectTimeout: 10 * time.Second, AckTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	// The maker's consumer: a persistent session that survives the broker's restart.
	subCert, subKey := p.issue(t, "consumer", false)
	tc, err := transport.TLSFiles{CAFile: filepath.Join(p.dir, "ca.pem"), CertFile: subCert, KeyFile: subKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}   // deliveries of each message id
	fresh := map[string]int{} // of those, in PUBLISHes the broker sent for the first time
	redelivered := 0          // PUBLISHes the broker sent again (DUP): its own redelivery to the consumer
	zr, _ := zstd.NewReader(nil)
	maxPayload := 0
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + br.Addr).SetClientID("consumer").SetCleanSession(false).
		SetTLSConfig(tc).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).SetConnectRetry(true).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe("makers/acme/+/summaries", 1, func(_ paho.Client, m paho.Message) {
				raw, err := zr.DecodeAll(m.Payload(), nil)
				var b syncpb.Batch
				if err == nil {
					err = proto.Unmarshal(raw, &b)
				}
				mu.Lock()
				defer mu.Unlock()
				maxPayload = max(maxPayload, len(m.Payload()))
				if err != nil || !strings.Contains(m.Topic(), household) {
					got["bad"]++
					return
				}
				if m.Duplicate() {
					redelivered++
				}
				for _, pm := range b.Messages {
					got[pm.Id]++
					if !m.Duplicate() {
						fresh[pm.Id]++
					}
				}
			})
		}))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("consumer connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	poll.Until(t, "the consumer's subscription", 10*time.Second, func() bool { return sub.IsConnectionOpen() })

	st := storetest.Open(t, nil)
	clk := &clock{now: time.Date(2026, 5, 10, 3, 0, 0, 0, time.UTC)}
	d := New(st, tr, &Options{Household: household, Consent: privacy.Consent{Usage: true}, BatchCount: 3, Now: clk.Now,
		InitialBackoff: time.Second, MaxBackoff: 4 * time.Second})
	ids := enqueueDays(t, st, clk.Now(), []string{"a", "b", "c"}, dates(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 20)...) // 60, 20 batches
	clk.Add(time.Minute)
	ctx := context.Background()
	stopped, restarted := false, false
	var wg sync.WaitGroup
	for i := 0; i < 400; i++ {
		h := d.Health()
		switch {
		case !stopped && h.Delivered >= 9:
			// Down between two steps: the next publishes fail; nothing leaves the outbox.
			br.Stop()
			stopped = true
			before := h.Delivered
			if _, err := d.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if h := d.Health(); h.Delivered != before || h.Errors == 0 || h.Pending.Batches == 0 {
				t.Fatalf("with the broker down: %+v", h)
			}
			br.Start()
		case stopped && !restarted && h.Delivered >= 30:
			// Restarted while publishes are in flight.
			restarted = true
			wg.Add(1)
			go func() { defer wg.Done(); br.Restart() }()
		}
		wake, err := d.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h := d.Health(); h.Pending.Queued == 0 && h.Pending.Batches == 0 {
			break
		}
		clk.Set(wake)
	}
	wg.Wait()
	if !restarted {
		t.Fatal("the stream ended before the broker was restarted")
	}
	for i := 0; i < 100; i++ { // what failed during the restart goes again
		if h := d.Health(); h.Pending.Queued == 0 && h.Pending.Batches == 0 {
			break
		}
		wake, err := d.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clk.Set(wake)
	}
	if h := d.Health(); h.Pending.Batches != 0 || h.Delivered != int64(len(ids)) {
		t.Fatalf("not drained: %+v", h)
	}
	poll.Until(t, "every summary at the consumer", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	dups, hubDups := 0, 0
	for _, id := range ids {
		dups += got[id] - 1
		hubDups += max(fresh[id]-1, 0)
	}
	t.Logf("consumer: %d unique, %d duplicates (%d from the hub publishing a batch again, the rest the broker's redelivery of %d PUBLISHes after its restart), largest payload %d B; hub errors %d",
		len(ids), dups, hubDups, redelivered, maxPayload, d.Health().Errors)
	if got["bad"] > 0 {
		t.Errorf("%d payloads did not decode or came on another household's topic", got["bad"])
	}
	// The hub sends a batch again only when its PUBACK was lost: at most the window in
	// flight (4 batches of 3) at each of the two faults.
	if hubDups > 2*4*3 {
		t.Errorf("%d duplicates from the hub: more than the window (4 batches of 3) in flight at each of the two faults", hubDups)
	}
	if maxPayload > transport.AWSIoTMaxPayload {
		t.Errorf("payload of %d bytes", maxPayload)
	}
}
