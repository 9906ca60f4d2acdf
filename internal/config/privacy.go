package config

import (
	"path/filepath"
	"time"

	"github.com/hearth-iot/hearth/sync/privacy"
)

// Privacy configures the household's rights (sync/privacy, docs/privacy.md): where
// the pseudonym key lives, the regions that make a transport cross-border, and how
// long the audit of what left the home is kept. Documented under `privacy:` in
// configs/hearth.yaml.
type Privacy struct {
	KeyFile        string   `yaml:"key_file"`
	Region         string   `yaml:"region"`
	EndpointRegion string   `yaml:"endpoint_region"`
	AuditKeep      Duration `yaml:"audit_keep"`
	PayloadKeep    Duration `yaml:"payload_keep"`
}

// DefaultPrivacy is the privacy section's defaults: sync/privacy's own.
func DefaultPrivacy() Privacy {
	d := privacy.DefaultOptions()
	return Privacy{AuditKeep: Duration(d.AuditKeep), PayloadKeep: Duration(d.PayloadKeep)}
}

// KeyFile is the file of the pseudonym key: privacy.key_file, or pseudonym.key in
// data_dir.
func (c *Config) KeyFile() string {
	if c.Privacy.KeyFile != "" {
		return c.Privacy.KeyFile
	}
	return filepath.Join(c.DataDir, privacy.DefaultOptions().KeyFile)
}

// CrossBorder reports whether the transport's endpoint is outside the household's
// region (both declared, and different): every message then needs consent
// cross_border as well.
func (c *Config) CrossBorder() bool {
	p := c.Privacy
	return c.Sync.Transport != "file" && p.Region != "" && p.EndpointRegion != "" && p.Region != p.EndpointRegion
}

func (c *Config) validatePrivacy(bad func(key, format string, a ...any)) {
	p := c.Privacy
	if p.AuditKeep < Duration(24*time.Hour) {
		bad("privacy.audit_keep", "%s is below the minimum of 1d", p.AuditKeep.D())
	}
	if p.PayloadKeep < 0 || p.PayloadKeep > p.AuditKeep {
		bad("privacy.payload_keep", "must be between 0 (keep no payload) and privacy.audit_keep")
	}
	if (p.Region == "") != (p.EndpointRegion == "") {
		bad("privacy.endpoint_region", "privacy.region and privacy.endpoint_region go together (both empty: no transport is cross-border)")
	}
}
