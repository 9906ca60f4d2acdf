package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
)

// MQTT configures MQTT beyond the embedded broker's listener: the external-broker
// source and the mappings of real devices' topics (device/mqtt). Documented under
// `mqtt:` in configs/hearth.yaml.
type MQTT struct {
	External    MQTTExternal    `yaml:"external"`
	Zigbee2MQTT MQTTZigbee2MQTT `yaml:"zigbee2mqtt"`
	Tasmota     MQTTTasmota     `yaml:"tasmota"`
	Homie       MQTTHomie       `yaml:"homie"`
	Discovery   MQTTDiscovery   `yaml:"discovery"`
	Mappings    []MQTTMapping   `yaml:"mappings"`
}

// MQTTMapping is one entry of mqtt.mappings: a real device's topic mapped to a hearth
// device (device/mqtt.Mapping; its keys are documented in configs/hearth.yaml).
type MQTTMapping struct {
	Source  string                   `yaml:"source"`
	Name    string                   `yaml:"name"`
	Device  string                   `yaml:"device"`
	Kind    device.Kind              `yaml:"kind"`
	Signals map[string]device.Signal `yaml:"signals"`
}

// DeviceMappings are mqtt.mappings as device/mqtt takes them.
func (m MQTT) DeviceMappings() devmqtt.Mappings {
	out := make(devmqtt.Mappings, len(m.Mappings))
	for i, x := range m.Mappings {
		out[i] = devmqtt.Mapping{Source: x.Source, Name: x.Name, Device: x.Device, Kind: x.Kind, Signals: x.Signals}
	}
	return out
}

// MQTTExternal is a broker the household already runs (mosquitto with Zigbee2MQTT,
// say) that hearth subscribes to. URL "" turns it off.
type MQTTExternal struct {
	URL          string   `yaml:"url"`
	ClientID     string   `yaml:"client_id"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	CAFile       string   `yaml:"ca_file"`
	Topics       []string `yaml:"topics"`
	// MaxExtraSubscriptions bounds the topics subscribed to beyond Topics: the state
	// topics of accepted Home Assistant entities that no filter of Topics covers.
	MaxExtraSubscriptions int      `yaml:"max_extra_subscriptions"`
	MaxInflight           int      `yaml:"max_inflight"`
	ReconnectMax          Duration `yaml:"reconnect_max"`
	// RetainedLookback bounds the events read back, once per start, for the latest
	// stored values a retained message is compared with.
	RetainedLookback int `yaml:"retained_lookback"`
	// MaxTopicLabels bounds the topics (and fields) counted one by one in metrics
	// and status.
	MaxTopicLabels int `yaml:"max_topic_labels"`
}

type MQTTZigbee2MQTT struct {
	BaseTopic       string `yaml:"base_topic"`
	AttributeOutput bool   `yaml:"attribute_output"`
}

type MQTTTasmota struct {
	FullTopics []string `yaml:"full_topics"`
}

type MQTTHomie struct {
	BaseTopic     string `yaml:"base_topic"`
	MaxDevices    int    `yaml:"max_devices"`
	MaxNodes      int    `yaml:"max_nodes"`
	MaxProperties int    `yaml:"max_properties"`
}

type MQTTDiscovery struct {
	Enabled      bool   `yaml:"enabled"`
	Prefix       string `yaml:"prefix"`
	MaxProposals int    `yaml:"max_proposals"`
}

// DefaultMQTT is the mqtt section when the file says nothing: no external broker,
// the adapters' own defaults, discovery on, no mappings.
func DefaultMQTT() MQTT {
	// The adapters' and the external source's own defaults (device/mqtt/defaults.go).
	return MQTT{
		External: MQTTExternal{ClientID: devmqtt.DefaultExternalClientID, Topics: []string{},
			MaxExtraSubscriptions: devmqtt.DefaultExternalMaxExtraSubscriptions, MaxInflight: devmqtt.DefaultExternalMaxInflight,
			ReconnectMax: Duration(devmqtt.DefaultExternalReconnectMax), RetainedLookback: 1000000,
			MaxTopicLabels: devmqtt.DefaultExternalMaxTopicLabels},
		Zigbee2MQTT: MQTTZigbee2MQTT{BaseTopic: devmqtt.DefaultZigbee2MQTTBase},
		Tasmota:     MQTTTasmota{FullTopics: []string{devmqtt.DefaultTasmotaFullTopic}},
		Homie: MQTTHomie{BaseTopic: devmqtt.DefaultHomieBase, MaxDevices: devmqtt.DefaultHomieMaxDevices,
			MaxNodes: devmqtt.DefaultHomieMaxNodes, MaxProperties: devmqtt.DefaultHomieMaxProperties},
		Discovery: MQTTDiscovery{Enabled: true, Prefix: devmqtt.DefaultDiscoveryPrefix, MaxProposals: devmqtt.DefaultDiscoveryMaxProposals},
		Mappings:  []MQTTMapping{},
	}
}

// validateBroker checks the embedded broker's listeners and limits.
func (c *Config) validateBroker(bad func(key, format string, a ...any)) {
	b := &c.Broker
	if b.Listen == "" && b.TLSListen == "" {
		bad("broker.listen", "no listener: set broker.listen, broker.tls_listen or both")
	}
	if b.Listen != "" {
		checkListen(bad, "broker.listen", b.Listen)
	}
	if b.TLSListen != "" {
		checkListen(bad, "broker.tls_listen", b.TLSListen)
		if b.Listen == b.TLSListen && !strings.HasSuffix(b.Listen, ":0") {
			bad("broker.tls_listen", "%q is also broker.listen", b.TLSListen)
		}
		if b.TLSCertFile == "" {
			bad("broker.tls_cert_file", "required with broker.tls_listen")
		}
		if b.TLSKeyFile == "" {
			bad("broker.tls_key_file", "required with broker.tls_listen")
		}
	} else if b.TLSCertFile != "" || b.TLSKeyFile != "" {
		bad("broker.tls_listen", "tls_cert_file and tls_key_file are set but tls_listen is empty")
	}
	if c.Sim.Enabled && b.Listen == "" {
		bad("broker.listen", "the simulated household publishes over plain TCP: set broker.listen or disable sim")
	}
	if b.MaxPendingWrites < 1 || b.MaxPendingWrites > 1<<20 {
		bad("broker.max_pending_writes", "%d is not between 1 and 1048576", b.MaxPendingWrites)
	}
	if b.MaxConnecting < 1 || b.MaxConnecting > 65535 {
		bad("broker.max_connecting", "%d is not between 1 and 65535", b.MaxConnecting)
	}
	if b.ConnectTimeout <= 0 || b.ConnectTimeout.D() > 5*time.Minute {
		bad("broker.connect_timeout", "must be between 0 and 5m")
	}
	if !(b.PublishRate > 0) || b.PublishRate > 1e7 {
		bad("broker.publish_rate", "%v is not a rate between 0 and 1e7 publishes per second", b.PublishRate)
	}
	if b.PublishBurst < 1 {
		bad("broker.publish_burst", "must be at least 1")
	}
	if b.LockoutFailures < 1 {
		bad("broker.lockout_failures", "must be at least 1")
	}
	if b.LockoutWindow <= 0 {
		bad("broker.lockout_window", "must be positive")
	}
	if b.MaxConnectingPerSource < 1 || b.MaxConnectingPerSource > b.MaxConnecting {
		bad("broker.max_connecting_per_source", "%d is not between 1 and broker.max_connecting (%d)", b.MaxConnectingPerSource, b.MaxConnecting)
	}
	for _, l := range []struct {
		key       string
		v, lo, hi int
		why       string
	}{
		{"broker.max_topic_levels", b.MaxTopicLevels, 5, 255, " (hearth/v1/<id>/readings/pb has 5)"},
		{"broker.max_topic_bytes", b.MaxTopicBytes, 64, 65535, ""},
		{"broker.max_topic_aliases", b.MaxTopicAliases, 1, 65535, ""},
		{"broker.max_subscriptions", b.MaxSubscriptions, 1, 100000, ""},
	} {
		if l.v < l.lo || l.v > l.hi {
			bad(l.key, "%d is not between %d and %d%s", l.v, l.lo, l.hi, l.why)
		}
	}
}

// validateMQTT checks the mqtt section.
func (c *Config) validateMQTT(bad func(key, format string, a ...any)) {
	m := &c.MQTT
	e := &m.External
	if e.URL != "" {
		u, err := url.Parse(e.URL)
		switch {
		case err != nil:
			bad("mqtt.external.url", "%q is not a URL: %v", e.URL, err)
		case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" && u.Scheme != "mqtts":
			bad("mqtt.external.url", "%q: scheme %q is not one of tcp, ssl, tls, mqtt, mqtts", e.URL, u.Scheme)
		case u.Host == "" || u.Port() == "":
			bad("mqtt.external.url", "%q: want scheme://host:port, e.g. tcp://192.168.1.10:1883", e.URL)
		case u.User != nil:
			bad("mqtt.external.url", "put credentials in username and password_file, not in the URL")
		}
		if e.ClientID == "" || len(e.ClientID) > 64 {
			bad("mqtt.external.client_id", "%q: want 1 to 64 characters (the persistent session is keyed by it)", e.ClientID)
		}
	}
	for i, t := range e.Topics {
		if t == "" || strings.Contains(t, "#") && !strings.HasSuffix(t, "#") || len(t) > 1024 {
			bad("mqtt.external.topics", "topics[%d] %q is not an MQTT topic filter", i, t)
		}
	}
	if e.MaxExtraSubscriptions < 1 || e.MaxExtraSubscriptions > 100000 {
		bad("mqtt.external.max_extra_subscriptions", "%d is not between 1 and 100000", e.MaxExtraSubscriptions)
	}
	if e.MaxInflight < 1 || e.MaxInflight > 65535 {
		bad("mqtt.external.max_inflight", "%d is not between 1 and 65535", e.MaxInflight)
	}
	if e.ReconnectMax < Duration(time.Second) {
		bad("mqtt.external.reconnect_max", "must be at least 1s")
	}
	if e.RetainedLookback < 0 || e.RetainedLookback > 100000000 {
		bad("mqtt.external.retained_lookback", "%d is not between 0 and 100000000", e.RetainedLookback)
	}
	if e.MaxTopicLabels < 1 || e.MaxTopicLabels > 10000 {
		bad("mqtt.external.max_topic_labels", "%d is not between 1 and 10000", e.MaxTopicLabels)
	}
	if m.Zigbee2MQTT.BaseTopic == "" {
		bad("mqtt.zigbee2mqtt.base_topic", "must not be empty")
	}
	if len(m.Tasmota.FullTopics) == 0 {
		bad("mqtt.tasmota.full_topics", "at least one FullTopic (Tasmota's default is %%prefix%%/%%topic%%/)")
	}
	if m.Homie.BaseTopic == "" {
		bad("mqtt.homie.base_topic", "must not be empty")
	}
	for key, v := range map[string]int{"mqtt.homie.max_devices": m.Homie.MaxDevices, "mqtt.homie.max_nodes": m.Homie.MaxNodes,
		"mqtt.homie.max_properties": m.Homie.MaxProperties, "mqtt.discovery.max_proposals": m.Discovery.MaxProposals} {
		if v < 1 || v > 100000 {
			bad(key, "%d is not between 1 and 100000", v)
		}
	}
	if m.Discovery.Prefix == "" {
		bad("mqtt.discovery.prefix", "must not be empty")
	}
}

// checkMappings checks every mapping at its own line, and warns about a name that
// looks like a topic (zigbee2mqtt/Fridge Door, tele/pow1/SENSOR): the adapters match a
// name against the part of the topic after their base topic, so it would never match.
func (c *Config) checkMappings(bad, warn func(key, format string, a ...any)) {
	m := &c.MQTT
	for _, p := range m.DeviceMappings().Problems() {
		bad(fmt.Sprintf("mqtt.mappings[%d].%s", p.Index, p.Field), "%s", p.Msg)
	}
	prefixes := map[string]string{
		devmqtt.SourceZigbee2MQTT:   m.Zigbee2MQTT.BaseTopic + "/",
		devmqtt.SourceHomeAssistant: m.Discovery.Prefix + "/",
	}
	for i, mp := range m.Mappings {
		key := fmt.Sprintf("mqtt.mappings[%d].name", i)
		switch p := prefixes[mp.Source]; {
		case p != "" && p != "/" && strings.HasPrefix(mp.Name, p):
			warn(key, "%q looks like a topic: write the name without %q (%q); as written it matches no topic",
				mp.Name, p, strings.TrimPrefix(mp.Name, p))
		case mp.Source == devmqtt.SourceTasmota && tasmotaTopicRE.MatchString(mp.Name):
			warn(key, "%q looks like a topic: a Tasmota name is the device's Topic (pow1), or Topic/sensor; as written it matches no topic",
				mp.Name)
		}
	}
}

// tasmotaTopicRE matches a full Tasmota topic (tele/pow1/SENSOR, stat/pow1/RESULT)
// written where the device's Topic belongs.
var tasmotaTopicRE = regexp.MustCompile(`^(tele|stat|cmnd)/[^/]+/`)
