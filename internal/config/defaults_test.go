package config

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device/mqtt/external"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/device/mqtt/homie"
	"github.com/hearth-iot/hearth/device/mqtt/tasmota"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/device/periph/hx711"
	"github.com/hearth-iot/hearth/device/periph/reed"
	"github.com/hearth-iot/hearth/device/serial"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/edge/tagging"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/procs"
	"github.com/hearth-iot/hearth/internal/supervise"
	"github.com/hearth-iot/hearth/sync/outbox"
	"github.com/hearth-iot/hearth/sync/privacy"
	"github.com/hearth-iot/hearth/sync/summary"
	"github.com/hearth-iot/hearth/sync/transport"
)

// The configuration's defaults are the components' own (one source: a component's
// DefaultOptions): an agent run on embedded defaults and a component built with nil
// options behave alike.
func TestDefaultsAreTheComponents(t *testing.T) {
	c := Default()
	type pair struct {
		key       string
		cfg, comp any
	}
	st, bo, so := store.DefaultOptions(), broker.DefaultOptions(), serial.DefaultOptions()
	ob, sm, sp := outbox.DefaultOptions(), summary.DefaultOptions(), DefaultSerialPort()
	ex, ho, ha := external.DefaultOptions(), homie.DefaultOptions(), hadiscovery.DefaultLearnerOptions()
	tm, th, ts := transport.DefaultMQTTOptions(), transport.DefaultHTTPSOptions(), transport.DefaultSegmentOptions()
	rd, hx, hg, hh := reed.DefaultOpts(), hx711.DefaultOpts(), DefaultHubGPIO(), DefaultHubHX711()
	for _, p := range []pair{
		{"store.quota_bytes", c.Store.QuotaBytes, st.QuotaBytes}, {"store.max_age", c.Store.MaxAge.D(), st.MaxAge},
		{"store.max_batch", c.Store.MaxBatch, st.MaxBatch}, {"store.commit_pace", c.Store.CommitPace.D(), st.CommitPace},
		{"store.queue_len", c.Store.QueueLen, st.QueueLen}, {"store.max_delay", c.Store.MaxDelay.D(), st.MaxDelay},
		{"store.flash_budget", c.Store.FlashBudget, st.FlashBudget},
		{"ingest.max_clock_skew", c.Ingest.MaxClockSkew.D(), ingest.DefaultOptions().MaxSkew},
		{"broker.max_packet_bytes", c.Broker.MaxPacketBytes, bo.MaxPacketBytes}, {"broker.max_clients", c.Broker.MaxClients, bo.MaxClients},
		{"broker.max_inflight", c.Broker.MaxInflight, bo.MaxInflight}, {"broker.session_expiry", c.Broker.SessionExpiry.D(), bo.SessionExpiry},
		{"broker.connect_timeout", c.Broker.ConnectTimeout.D(), bo.ConnectTimeout}, {"broker.max_connecting", c.Broker.MaxConnecting, bo.MaxConnecting},
		{"broker.max_connecting_per_source", c.Broker.MaxConnectingPerSource, bo.MaxConnectingPerSource},
		{"broker.publish_rate", c.Broker.PublishRate, bo.PublishRate}, {"broker.lockout_window", c.Broker.LockoutWindow.D(), bo.LockoutWindow},
		{"broker.max_topic_bytes", c.Broker.MaxTopicBytes, bo.MaxTopicBytes}, {"broker.max_subscriptions", c.Broker.MaxSubscriptions, bo.MaxSubscriptions},
		{"tagging.peak_hours", [2]int{c.Tagging.PeakHours[0], c.Tagging.PeakHours[1]}, tagging.DefaultOptions().PeakHours},
		{"stages.restart_min", c.Stages.RestartMin.D(), supervise.DefaultOptions().RestartMin},
		{"cpu.burst_rate", c.CPU.BurstRate, procs.DefaultOptions().BurstRate},
		{"sync.batch_age", c.Sync.BatchAge.D(), ob.BatchAge}, {"sync.retry.resume_spread", c.Sync.Retry.ResumeSpread.D(), ob.ResumeSpread},
		{"sync.dead_letter_keep", c.Sync.DeadLetterKeep, ob.DeadLetterKeep}, {"sync.day_close_grace", c.Sync.DayCloseGrace.D(), sm.CloseGrace},
		{"sync.day_close_spread", c.Sync.DayCloseSpread.D(), sm.CloseSpread},
		{"sync.tag_score_step", c.Sync.TagScoreStep, sm.TagScoreStep},
		{"serial[].baud", sp.Baud, so.Baud}, {"serial[].max_frame", sp.MaxFrame, so.MaxFrame}, {"serial[].time_sync", sp.TimeSync.D(), so.TimeSync},
		{"serial[].reconnect_max", sp.ReconnectMax.D(), so.ReconnectMax},
		{"mqtt.external.client_id", c.MQTT.External.ClientID, ex.ClientID}, {"mqtt.external.max_inflight", c.MQTT.External.MaxInflight, ex.MaxInflight},
		{"mqtt.external.reconnect_max", c.MQTT.External.ReconnectMax.D(), ex.ReconnectMax},
		{"mqtt.zigbee2mqtt.base_topic", c.MQTT.Zigbee2MQTT.BaseTopic, zigbee2mqtt.DefaultOptions().BaseTopic},
		{"mqtt.tasmota.full_topics", c.MQTT.Tasmota.FullTopics[0], tasmota.DefaultOptions().FullTopics[0]},
		{"mqtt.homie.max_nodes", c.MQTT.Homie.MaxNodes, ho.MaxNodes}, {"mqtt.discovery.prefix", c.MQTT.Discovery.Prefix, ha.Prefix},
		{"mqtt.discovery.max_proposals", c.MQTT.Discovery.MaxProposals, ha.MaxProposals},
		{"privacy.audit_keep", c.Privacy.AuditKeep.D(), privacy.DefaultOptions().AuditKeep},
		{"privacy.payload_keep", c.Privacy.PayloadKeep.D(), privacy.DefaultOptions().PayloadKeep},
		{"privacy.key_file (in data_dir)", filepath.Base(c.KeyFile()), privacy.DefaultOptions().KeyFile},
		{"admin.readings_max", c.Admin.ReadingsMax, admin.DefaultReadingsMax},
		{"sync.mqtt.topic", c.Sync.MQTT.Topic, tm.Topic}, {"sync.mqtt.max_payload_bytes", c.Sync.MQTT.MaxPayloadBytes, tm.MaxPayload},
		{"sync.mqtt.window", c.Sync.MQTT.Window, tm.Window}, {"sync.mqtt.ack_timeout", c.Sync.MQTT.AckTimeout.D(), tm.AckTimeout},
		{"sync.https.max_batch_bytes", c.Sync.HTTPS.MaxBatchBytes, th.MaxBatchBytes}, {"sync.https.timeout", c.Sync.HTTPS.Timeout.D(), th.Timeout},
		{"sync.segment.timeout", c.Sync.Segment.Timeout.D(), ts.Timeout},
		{"hub_sensors[].gpio.pull", GPIOPulls[hg.Pull], rd.Pull}, {"hub_sensors[].gpio.edge", GPIOEdges[hg.Edge], rd.Edge},
		{"hub_sensors[].gpio.debounce", hg.Debounce.D(), rd.Debounce}, {"hub_sensors[].gpio.recheck", hg.Recheck.D(), rd.Recheck},
		{"hub_sensors[].hx711.gain", hh.Gain, hx.Gain}, {"hub_sensors[].hx711.ready_timeout", hh.ReadyTimeout.D(), hx.ReadyTimeout},
		{"hub_sensors[].hx711.clock_high_limit", hh.ClockHighLimit.D(), hx.ClockHighLimit},
	} {
		if p.cfg != p.comp {
			t.Errorf("%s: the configuration's default %v, the component's %v", p.key, p.cfg, p.comp)
		}
	}
	if c.Store.CommitPace.D() != 5*time.Millisecond { // the figure docs/performance.md measured
		t.Errorf("store.commit_pace default %s", c.Store.CommitPace.D())
	}
}
