package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// The Debian package: the binary, the hardened unit, the documented configuration as a
// conffile in /etc/hearth, a system user `hearth`, and /var/lib/hearth. Built with
// nfpm as a library (no dpkg-buildpackage, no debian/ tree to keep beside the Go
// build). Purge removes the user, the store and the configuration.

const (
	debBin  = "/usr/bin/hearth"
	debUnit = "/lib/systemd/system/hearth.service"
	debConf = "/etc/hearth/hearth.yaml"
	debData = "/var/lib/hearth"
)

const postinst = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if ! getent passwd hearth >/dev/null; then
		adduser --system --group --home /var/lib/hearth --no-create-home --shell /usr/sbin/nologin --quiet hearth
	fi
	# Serial adapters (dialout), and GPIO and I2C where the board has those groups.
	for g in dialout gpio i2c; do
		if getent group "$g" >/dev/null; then adduser --quiet hearth "$g"; fi
	done
	install -d -o hearth -g hearth -m 0750 /var/lib/hearth
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
		systemctl enable hearth.service >/dev/null 2>&1 || true
		systemctl restart hearth.service >/dev/null 2>&1 || echo "hearth: not started; see systemctl status hearth" >&2
	fi
fi
`

const prerm = `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl stop hearth.service >/dev/null 2>&1 || true
	systemctl disable hearth.service >/dev/null 2>&1 || true
fi
`

const postrm = `#!/bin/sh
set -e
if [ "$1" = purge ]; then
	# The household's data goes with the package: the store, the admin token, the
	# local summaries. An upgrade or a plain remove keeps them.
	rm -rf /var/lib/hearth /etc/hearth
	if getent passwd hearth >/dev/null; then deluser --system --quiet hearth || true; fi
	if getent group hearth >/dev/null; then delgroup --system --quiet hearth || true; fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
`

// debVersion makes a Debian version of the build's version: v1.2.3 stays 1.2.3; a
// git description without a tag (a commit hash) becomes 0.0~git<hash>.
func debVersion(v string) string {
	if !releaseVersion.MatchString(v) {
		return "0.0~git" + strings.ReplaceAll(v, "-", ".")
	}
	return strings.ReplaceAll(strings.TrimPrefix(v, "v"), "-", "~")
}

// releaseVersion is a tag's version: v1.2, 1.2.3, 1.2.3-rc1.
var releaseVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+`)

// buildDeb writes the package of platform p into outDir and returns its path.
func buildDeb(s imageSpec, p platform, outDir string) (string, error) {
	work, err := os.MkdirTemp("", "hearth-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	conf, err := packageConfig(s.Root)
	if err != nil {
		return "", err
	}
	unit, err := os.ReadFile(filepath.Join(s.Root, "configs", "hearth.service"))
	if err != nil {
		return "", err
	}
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/hearth"), []byte(debBin))
	write := func(name string, b []byte) (string, error) {
		path := filepath.Join(work, name)
		return path, os.WriteFile(path, b, 0o644)
	}
	var confPath, unitPath string
	scripts := map[string]string{}
	for name, body := range map[string][]byte{"hearth.yaml": conf, "hearth.service": unit,
		"postinst": []byte(postinst), "prerm": []byte(prerm), "postrm": []byte(postrm)} {
		path, err := write(name, body)
		if err != nil {
			return "", err
		}
		scripts[name] = path
	}
	confPath, unitPath = scripts["hearth.yaml"], scripts["hearth.service"]
	info := nfpm.WithDefaults(&nfpm.Info{
		Name: "hearth", Arch: p.Deb, Platform: "linux", Version: debVersion(s.Version), VersionSchema: "none",
		Section: "net", Priority: "optional", Maintainer: "hearth maintainers <hearth@hearth-iot.invalid>",
		Homepage: "https://github.com/hearth-iot/hearth",
		Description: "home-hub agent for smart appliances\n" +
			"hearth reads a household's appliances over MQTT, serial and GPIO, keeps their\n" +
			"behaviour durably on the hub, learns usage-pattern tags there, and sends only\n" +
			"consented, pseudonymous summaries to the appliance maker's cloud.",
		MTime: s.Created,
		Overridables: nfpm.Overridables{
			Depends: []string{"adduser"},
			Contents: files.Contents{
				{Source: filepath.Join(s.Dist, p.binName()), Destination: debBin, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: unitPath, Destination: debUnit, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Source: confPath, Destination: debConf, Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Destination: debData, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o750}},
			},
			Scripts: nfpm.Scripts{PostInstall: scripts["postinst"], PreRemove: scripts["prerm"], PostRemove: scripts["postrm"]},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("deb %s: %w", p.Deb, err)
	}
	out := filepath.Join(outDir, deb.Default.ConventionalFileName(info))
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("deb %s: %w", p.Deb, err)
	}
	return out, f.Close()
}

// sourceDate is the release's timestamp: $SOURCE_DATE_EPOCH (reproducible builds), else
// the time given.
func sourceDate(fallback time.Time) time.Time {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		var sec int64
		if _, err := fmt.Sscan(v, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return fallback.UTC()
}
