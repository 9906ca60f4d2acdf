package main

// `hearth config check` and the checks `hearth run` makes before it builds anything.
//
// A configuration file can be wrong in two ways: in itself (a wrong type, an unknown
// key, a value out of range, two keys that disagree: internal/config finds those) and
// against the machine it runs on (a rules file that is missing or does not parse, a
// data_dir that is a file, a TLS key pair that does not load, a secret readable by
// others). checkSystem finds the second kind. It is one code path: `config check`
// reports what it finds, and `run` calls it first and refuses to start on any of it,
// with the same lines; the agent then builds its parts with the same functions
// checkSystem tried (readRules, loadBrokerCert, readExternalSecrets, mqttAdapters,
// simOptions), so the two cannot disagree.
//
// Not checked, because it depends on the moment rather than the configuration: whether
// a listen address is free (a running hearth holds its own), whether the store is
// locked by another agent, whether a serial adapter is plugged in (hearth waits for it).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/sim"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/config"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// keyError is a problem of one configuration key, found by a check that run and
// config check share; checkSystem reports it at the key's line.
type keyError struct {
	key string
	err error
}

func (e keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e keyError) Unwrap() error { return e.err }

// report records err in f: at its keyError's key, else at key. A message of several
// lines (a rules file's errors) is one problem per line.
func report(f *config.File, key string, err error) {
	var ke keyError
	if errors.As(err, &ke) {
		key, err = ke.key, ke.err
	}
	for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		f.Errorf(key, "%s", line)
	}
}

// checkSystem adds to f every problem `hearth run` would meet with f.Config on this
// machine, beyond the file itself. It changes nothing on disk. A section that already
// has an error in f is not checked again.
func checkSystem(f *config.File) {
	c := &f.Config
	if f.Clean("data_dir") {
		if err := checkDataDir(c.DataDir); err != nil {
			report(f, "data_dir", err)
		} else {
			checkInDataDir(f)
		}
	}
	if f.Clean("admin.token_file") && f.Clean("data_dir") {
		if err := checkTokenFile(c); err != nil {
			report(f, "admin.token_file", err)
		}
	}
	if f.Clean("tagging.rules_file") {
		if _, _, err := readRules(c.Tagging.RulesFile); err != nil {
			report(f, "tagging.rules_file", err)
		}
	}
	if c.Broker.Enabled && c.Broker.TLSListen != "" && f.Clean("broker.tls_cert_file") && f.Clean("broker.tls_key_file") {
		if _, err := loadBrokerCert(c.Broker); err != nil {
			report(f, "broker.tls_cert_file", err)
		}
	}
	if c.MQTT.External.URL != "" && f.Clean("mqtt.external.password_file") && f.Clean("mqtt.external.ca_file") {
		if _, _, err := readExternalSecrets(c.MQTT.External); err != nil {
			report(f, "mqtt.external", err)
		}
	}
	if f.Clean("mqtt.zigbee2mqtt") && f.Clean("mqtt.tasmota") && f.Clean("mqtt.homie") && f.Clean("mqtt.discovery") && f.Clean("mqtt.mappings") {
		if _, err := mqttAdapters(c.MQTT); err != nil {
			report(f, "mqtt", err)
		}
	}
	if c.Sync.Transport != "file" && f.Clean("sync") { // sync.go; the file transport is checkInDataDir's
		if tr, err := buildTransport(*c); err != nil {
			report(f, "sync", err)
		} else {
			_ = tr.Close()
		}
	}
	if c.Sim.Enabled && f.Clean("sim") {
		if _, err := sim.New(simOptions(*c, time.Now().Add(-c.Sim.History.D()))); err != nil {
			key := "sim"
			switch {
			case errors.Is(err, sim.ErrUnknownPersona):
				key = "sim.persona"
			case errors.Is(err, sim.ErrUnsupportedKind):
				key = "sim.kinds"
			}
			report(f, key, errors.New(strings.TrimPrefix(err.Error(), "sim: ")))
		}
	}
}

// checkDataDir checks that dir is a directory hearth can write, or can be made one:
// what prepareDataDir does at a start, without doing it.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
			return fmt.Errorf("%s is not writable: %w", dir, err)
		}
		return nil
	}
	// Missing (or unreachable): MkdirAll will need the nearest existing ancestor to
	// be a directory it can write.
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("cannot create %s: %s is not a directory", dir, p)
		case err == nil:
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("cannot create %s: %s is not writable: %w", dir, p, err)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("cannot create %s: %w", dir, err)
		}
		if p == filepath.Dir(p) {
			return fmt.Errorf("cannot create %s: no ancestor exists", dir)
		}
	}
}

// checkInDataDir checks what exists in data_dir where run will put the store and the
// file transport's directory.
func checkInDataDir(f *config.File) {
	c := &f.Config
	if fi, err := os.Stat(filepath.Join(c.DataDir, c.Store.File)); err == nil && !fi.Mode().IsRegular() && f.Clean("store.file") {
		f.Errorf("store.file", "%s exists and is not a regular file", filepath.Join(c.DataDir, c.Store.File))
	}
	if fi, err := os.Stat(filepath.Join(c.DataDir, c.Sync.Dir)); err == nil && !fi.IsDir() && f.Clean("sync.dir") {
		f.Errorf("sync.dir", "%s exists and is not a directory", filepath.Join(c.DataDir, c.Sync.Dir))
	}
}

// checkTokenFile checks the admin token file as admin.LoadOrCreateToken will treat it:
// an existing one must be usable; a missing one outside data_dir needs a directory
// to be made in (in data_dir, checkDataDir saw to it).
func checkTokenFile(c *config.Config) error {
	path := c.AdminTokenFile()
	err := admin.CheckToken(path)
	switch {
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case c.Admin.TokenFile == "":
		return nil // made in data_dir
	}
	dir := filepath.Dir(path)
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("cannot make %s: %s: %w", path, dir, err)
	}
	return nil
}

// loadBrokerCert loads the embedded broker's TLS key pair (broker.tls_cert_file and
// tls_key_file).
func loadBrokerCert(b config.Broker) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(b.TLSCertFile, b.TLSKeyFile)
	if err != nil {
		return cert, keyError{"broker.tls_cert_file", fmt.Errorf("with broker.tls_key_file: %w", err)}
	}
	return cert, nil
}

// readExternalSecrets reads the external broker's password (password_file) and CA
// certificates (ca_file); a nil tls.Config means the system roots.
func readExternalSecrets(e config.MQTTExternal) (password string, tc *tls.Config, err error) {
	if e.PasswordFile != "" {
		b, err := readSecret(e.PasswordFile)
		if err != nil {
			return "", nil, keyError{"mqtt.external.password_file", err}
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return "", nil, keyError{"mqtt.external.ca_file", err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", nil, keyError{"mqtt.external.ca_file", fmt.Errorf("%s holds no PEM certificate", e.CAFile)}
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return password, tc, nil
}

// maxSecret bounds what is read of a secret file.
const maxSecret = 4 << 10

// readSecret reads a file holding a secret (a password): a regular file that others
// (neither its owner nor its group) cannot read or write. Its group may read it, so
// that root can own it and hearth's group read it (mode 0640).
func readSecret(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return nil, fmt.Errorf("%s is open to others (mode %04o): a secret may be read by its owner and group only: run `chmod o-rwx %s`",
			path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxSecret+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a password", path, maxSecret)
	}
	return b, nil
}

// simOptions are the options of the simulated household, starting at start.
func simOptions(cfg config.Config, start time.Time) sim.Options {
	var kinds []device.Kind
	for _, k := range cfg.Sim.Kinds {
		kinds = append(kinds, device.Kind(k))
	}
	return sim.Options{Persona: sim.Persona(cfg.Sim.Persona), Seed: cfg.Sim.Seed, Start: start, Location: cfg.Location(),
		Kinds: kinds, Prefix: privacy.SimPrefix, Boot: uint64(time.Now().UnixNano())}
}

// cmdConfigCheck is `hearth config check FILE`: every problem of the file and of the
// machine against it, one per line with its key and line, warnings after them; exit 1
// if there is an error, 0 otherwise (warnings alone do not fail).
func cmdConfigCheck(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "hearth: config check takes one FILE")
		return 2
	}
	f, err := config.Read(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "hearth: %v\n", err)
		return 1
	}
	checkSystem(f)
	f.Errors.Sort()
	for _, e := range append(append(config.Errors{}, f.Errors...), f.Warnings...) {
		fmt.Fprintln(stderr, e.Error())
	}
	if len(f.Errors) > 0 {
		fmt.Fprintf(stderr, "%s: %d error(s), %d warning(s)\n", args[0], len(f.Errors), len(f.Warnings))
		return 1
	}
	if len(f.Warnings) > 0 {
		fmt.Fprintf(stdout, "%s: ok, %d warning(s)\n", args[0], len(f.Warnings))
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}
