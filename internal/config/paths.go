package config

import (
	"path/filepath"
	"strings"
)

// Every path in the configuration is one of two kinds, and each kind has one rule:
//
//   - inside data_dir (store.file, sync.dir): a relative path that stays inside
//     data_dir — not absolute, no .. that climbs out of it, not data_dir itself;
//   - anywhere (data_dir, tagging.rules_file, broker.tls_cert_file and tls_key_file,
//     admin.token_file, mqtt.external.password_file and ca_file, the secret and TLS
//     files of sync.segment, sync.https and sync.mqtt): absolute, or
//     relative to the directory of the configuration file (as Prometheus reads its
//     rule_files), whatever the working directory of the process; without a file
//     (the built-in defaults) relative to the working directory.
//
// A key added to the configuration that holds a path is listed in paths, with its kind.
// (serial[].path is a device node and must be absolute: validateSerial.)

type pathKind int

const (
	inDataDir pathKind = iota
	anywhere
)

type pathKey struct {
	key  string
	p    *string
	kind pathKind
}

// paths lists every path of the configuration.
func (c *Config) paths() []pathKey {
	return []pathKey{
		{"data_dir", &c.DataDir, anywhere},
		{"store.file", &c.Store.File, inDataDir},
		{"sync.dir", &c.Sync.Dir, inDataDir},
		{"tagging.rules_file", &c.Tagging.RulesFile, anywhere},
		{"broker.tls_cert_file", &c.Broker.TLSCertFile, anywhere},
		{"broker.tls_key_file", &c.Broker.TLSKeyFile, anywhere},
		{"admin.token_file", &c.Admin.TokenFile, anywhere},
		{"privacy.key_file", &c.Privacy.KeyFile, anywhere},
		{"mqtt.external.password_file", &c.MQTT.External.PasswordFile, anywhere},
		{"mqtt.external.ca_file", &c.MQTT.External.CAFile, anywhere},
		{"sync.segment.write_key_file", &c.Sync.Segment.WriteKeyFile, anywhere},
		{"sync.https.token_file", &c.Sync.HTTPS.TokenFile, anywhere},
		{"sync.https.ca_file", &c.Sync.HTTPS.CAFile, anywhere},
		{"sync.https.cert_file", &c.Sync.HTTPS.CertFile, anywhere},
		{"sync.https.key_file", &c.Sync.HTTPS.KeyFile, anywhere},
		{"sync.mqtt.password_file", &c.Sync.MQTT.PasswordFile, anywhere},
		{"sync.mqtt.ca_file", &c.Sync.MQTT.CAFile, anywhere},
		{"sync.mqtt.cert_file", &c.Sync.MQTT.CertFile, anywhere},
		{"sync.mqtt.key_file", &c.Sync.MQTT.KeyFile, anywhere},
	}
}

// resolvePaths makes the relative paths that may point anywhere relative to dir, the
// configuration file's directory.
func (c *Config) resolvePaths(dir string) {
	for _, pk := range c.paths() {
		if pk.kind == anywhere && *pk.p != "" && !filepath.IsAbs(*pk.p) {
			*pk.p = filepath.Join(dir, *pk.p)
		}
	}
}

// validatePaths checks every path against the rule of its kind.
func (c *Config) validatePaths(bad func(key, format string, a ...any)) {
	for _, pk := range c.paths() {
		p := *pk.p
		if p != strings.TrimSpace(p) || strings.ContainsRune(p, 0) {
			bad(pk.key, "%q has surrounding spaces or a NUL byte", p)
			continue
		}
		switch pk.kind {
		case inDataDir:
			if !filepath.IsLocal(p) || filepath.Clean(p) == "." {
				bad(pk.key, "%q is not inside data_dir: give a relative path below it, without .. (e.g. %q)", p, filepath.Base(p))
			}
		case anywhere:
			if strings.HasSuffix(p, "/") && pk.key != "data_dir" {
				bad(pk.key, "%q is a directory path (trailing /), not a file", p)
			}
		}
	}
	if s, d := filepath.Clean(c.Store.File), filepath.Clean(c.Sync.Dir); s == d || strings.HasPrefix(s, d+"/") || strings.HasPrefix(d, s+"/") {
		bad("sync.dir", "%q overlaps store.file (%q): give each its own name", c.Sync.Dir, c.Store.File)
	}
}
