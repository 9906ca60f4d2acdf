package config

import (
	"net/url"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

// Sync configures what goes upstream and how (sync/summary, sync/outbox,
// sync/transport). Documented under `sync:` in configs/hearth.yaml and in
// docs/sync.md.
type Sync struct {
	Interval        Duration    `yaml:"interval"`
	Transport       string      `yaml:"transport"`
	Dir             string      `yaml:"dir"`
	BatchCount      int         `yaml:"batch_count"`
	BatchBytes      int         `yaml:"batch_bytes"`
	BatchAge        Duration    `yaml:"batch_age"`
	DayCloseGrace   Duration    `yaml:"day_close_grace"`
	DayCloseSpread  Duration    `yaml:"day_close_spread"`
	TagScoreStep    float64     `yaml:"tag_score_step"`
	OutboxMaxBytes  int         `yaml:"outbox_max_bytes"`
	MaxBytesPerHour int64       `yaml:"max_bytes_per_hour"`
	DeadLetterKeep  int         `yaml:"dead_letter_keep"`
	Retry           SyncRetry   `yaml:"retry"`
	Segment         SyncSegment `yaml:"segment"`
	HTTPS           SyncHTTPS   `yaml:"https"`
	MQTT            SyncMQTT    `yaml:"mqtt"`
}

// SyncRetry is the retry discipline shared by every transport.
type SyncRetry struct {
	Initial       Duration `yaml:"initial"`
	Max           Duration `yaml:"max"`
	LongOutage    Duration `yaml:"long_outage"`
	ResumeSpread  Duration `yaml:"resume_spread"`
	AuthRetry     Duration `yaml:"auth_retry"`
	MaxRetryAfter Duration `yaml:"max_retry_after"`
}

// SyncSegment is a Segment-spec endpoint (Segment, RudderStack, Jitsu).
type SyncSegment struct {
	Endpoint     string   `yaml:"endpoint"`
	WriteKey     string   `yaml:"write_key"`
	WriteKeyFile string   `yaml:"write_key_file"`
	Timeout      Duration `yaml:"timeout"`
}

// SyncHTTPS is a maker's own collector (protobuf + zstd).
type SyncHTTPS struct {
	URL           string   `yaml:"url"`
	TokenFile     string   `yaml:"token_file"`
	CAFile        string   `yaml:"ca_file"`
	CertFile      string   `yaml:"cert_file"`
	KeyFile       string   `yaml:"key_file"`
	MaxBatchBytes int      `yaml:"max_batch_bytes"`
	Timeout       Duration `yaml:"timeout"`
}

// SyncMQTT is a cloud MQTT broker (AWS IoT Core, EMQX, HiveMQ).
type SyncMQTT struct {
	Broker          string   `yaml:"broker"`
	ClientID        string   `yaml:"client_id"`
	Username        string   `yaml:"username"`
	PasswordFile    string   `yaml:"password_file"`
	CAFile          string   `yaml:"ca_file"`
	CertFile        string   `yaml:"cert_file"`
	KeyFile         string   `yaml:"key_file"`
	Topic           string   `yaml:"topic"`
	MaxPayloadBytes int      `yaml:"max_payload_bytes"`
	Window          int      `yaml:"window"`
	AckTimeout      Duration `yaml:"ack_timeout"`
}

// DefaultSync is the sync section's defaults: the local file sink.
func DefaultSync() Sync {
	// Delivery's, the summary builder's and the transports' own defaults.
	oo, so := outbox.DefaultOptions(), summary.DefaultOptions()
	mo, ho, sg := transport.DefaultMQTTOptions(), transport.DefaultHTTPSOptions(), transport.DefaultSegmentOptions()
	return Sync{Interval: Duration(2 * time.Second), Transport: "file", Dir: "outbox",
		BatchCount: 500, BatchBytes: 256 << 10, BatchAge: Duration(oo.BatchAge),
		DayCloseGrace: Duration(so.CloseGrace), DayCloseSpread: Duration(so.CloseSpread), TagScoreStep: so.TagScoreStep, OutboxMaxBytes: 4 << 20, DeadLetterKeep: oo.DeadLetterKeep,
		Retry: SyncRetry{Initial: Duration(oo.InitialBackoff), Max: Duration(oo.MaxBackoff), LongOutage: Duration(oo.LongOutage),
			ResumeSpread: Duration(oo.ResumeSpread), AuthRetry: Duration(oo.AuthRetry), MaxRetryAfter: Duration(oo.MaxRetryAfter)},
		Segment: SyncSegment{Timeout: Duration(sg.Timeout)},
		HTTPS:   SyncHTTPS{MaxBatchBytes: ho.MaxBatchBytes, Timeout: Duration(ho.Timeout)},
		MQTT: SyncMQTT{Topic: mo.Topic, MaxPayloadBytes: mo.MaxPayload, Window: mo.Window,
			AckTimeout: Duration(mo.AckTimeout)},
	}
}

// validateSync checks the sync section.
func (c *Config) validateSync(bad func(key, format string, a ...any)) {
	s := &c.Sync
	for key, d := range map[string]Duration{"sync.interval": s.Interval, "sync.batch_age": s.BatchAge,
		"sync.retry.initial": s.Retry.Initial, "sync.retry.max": s.Retry.Max, "sync.retry.long_outage": s.Retry.LongOutage,
		"sync.retry.resume_spread": s.Retry.ResumeSpread, "sync.retry.auth_retry": s.Retry.AuthRetry,
		"sync.retry.max_retry_after": s.Retry.MaxRetryAfter, "sync.segment.timeout": s.Segment.Timeout,
		"sync.https.timeout": s.HTTPS.Timeout, "sync.mqtt.ack_timeout": s.MQTT.AckTimeout} {
		if d <= 0 {
			bad(key, "must be positive")
		}
	}
	if s.Retry.Max < s.Retry.Initial {
		bad("sync.retry.max", "%s is below sync.retry.initial (%s)", s.Retry.Max.D(), s.Retry.Initial.D())
	}
	if s.DayCloseGrace <= 0 || s.DayCloseGrace.D() > 7*24*time.Hour {
		bad("sync.day_close_grace", "must be between 0 and 7d")
	}
	if s.DayCloseSpread < 0 || s.DayCloseSpread.D() > 24*time.Hour {
		bad("sync.day_close_spread", "must be between 0 (none) and 24h")
	}
	if s.BatchCount < 1 {
		bad("sync.batch_count", "must be at least 1")
	}
	if s.BatchBytes < 1024 {
		bad("sync.batch_bytes", "%d is below the minimum of 1024", s.BatchBytes)
	}
	if s.TagScoreStep <= 0 || s.TagScoreStep > 1 {
		bad("sync.tag_score_step", "%v is not in (0, 1]", s.TagScoreStep)
	}
	if s.OutboxMaxBytes < 0 {
		bad("sync.outbox_max_bytes", "must not be negative (0: no cap)")
	} else if s.OutboxMaxBytes > 0 && s.OutboxMaxBytes < 64<<10 {
		bad("sync.outbox_max_bytes", "%d is below the minimum of 65536 (64 KiB); 0 turns the cap off", s.OutboxMaxBytes)
	}
	if s.MaxBytesPerHour < 0 {
		bad("sync.max_bytes_per_hour", "must not be negative (0: no cap)")
	}
	if s.DeadLetterKeep < 1 {
		bad("sync.dead_letter_keep", "must be at least 1")
	}
	httpURL := func(key, v string) {
		u, err := url.Parse(v)
		if v == "" {
			bad(key, "must be set for sync.transport %s", s.Transport)
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key, "%q is not an http:// or https:// URL", v)
		}
	}
	switch s.Transport {
	case "file":
	case "segment":
		httpURL("sync.segment.endpoint", s.Segment.Endpoint)
		switch {
		case s.Segment.WriteKey == "" && s.Segment.WriteKeyFile == "":
			bad("sync.segment.write_key", "set write_key or write_key_file (the source's write key)")
		case s.Segment.WriteKey != "" && s.Segment.WriteKeyFile != "":
			bad("sync.segment.write_key", "set write_key or write_key_file, not both")
		}
	case "https":
		httpURL("sync.https.url", s.HTTPS.URL)
		if s.HTTPS.MaxBatchBytes < 1024 || s.HTTPS.MaxBatchBytes > 16<<20 {
			bad("sync.https.max_batch_bytes", "%d is not between 1024 and 16777216", s.HTTPS.MaxBatchBytes)
		}
		if (s.HTTPS.CertFile == "") != (s.HTTPS.KeyFile == "") {
			bad("sync.https.cert_file", "cert_file and key_file go together")
		}
	case "mqtt":
		u, err := url.Parse(s.MQTT.Broker)
		switch {
		case s.MQTT.Broker == "":
			bad("sync.mqtt.broker", "must be set for sync.transport mqtt (e.g. tls://xxxx.iot.eu-west-1.amazonaws.com:8883)")
		case err != nil || u.Host == "" || !(u.Scheme == "tls" || u.Scheme == "ssl" || u.Scheme == "mqtts" || u.Scheme == "tcp"):
			bad("sync.mqtt.broker", "%q: want tls://host:port (or tcp:// for a test broker)", s.MQTT.Broker)
		}
		if (s.MQTT.CertFile == "") != (s.MQTT.KeyFile == "") {
			bad("sync.mqtt.cert_file", "cert_file and key_file go together")
		}
		if !strings.Contains(s.MQTT.Topic, "{household}") || strings.ContainsAny(s.MQTT.Topic, "+#") {
			bad("sync.mqtt.topic", "%q: want a topic with {household} and no wildcard", s.MQTT.Topic)
		}
		if s.MQTT.MaxPayloadBytes < 1024 || s.MQTT.MaxPayloadBytes > 256<<20 {
			bad("sync.mqtt.max_payload_bytes", "%d is not between 1024 and 268435456", s.MQTT.MaxPayloadBytes)
		}
		if s.MQTT.Window < 1 || s.MQTT.Window > 100 {
			bad("sync.mqtt.window", "%d is not between 1 and 100", s.MQTT.Window)
		}
	default:
		bad("sync.transport", "%q is not one of file, segment, https, mqtt", s.Transport)
	}
}
