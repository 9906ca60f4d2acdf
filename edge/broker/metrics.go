package broker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hearth-iot/hearth/internal/metricset"
)

type metrics struct {
	set          *metricset.Set
	connects     *prometheus.CounterVec
	publishes    *prometheus.CounterVec
	subscribes   *prometheus.CounterVec
	readings     *prometheus.CounterVec
	payloadBytes prometheus.Counter
	fields       prometheus.Counter
	// The counters of the hot path, looked up once.
	pubCommitted, readCommitted prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Broker) *metrics {
	m := &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_connects_total",
			Help: "MQTT connection attempts, by result: accepted, no_credentials, bad_credentials, locked_out (the pair of source and device name failed broker.lockout_failures times), panic (a connection the MQTT library panicked on), too_many_connecting (closed at once: broker.max_connecting connections still connecting), too_many_connecting_from_source (closed at once: broker.max_connecting_per_source of them from its source), connecting_evicted (a connection still connecting, closed to make room for one from a source holding fewer), too_many_clients (CONNACK server busy: broker.max_clients connected)."}, []string{"result"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_publishes_total",
			Help: "MQTT publishes, by result: committed, ignored (nothing to store: availability, bridge topics), refused (by the store, for now: not acknowledged), rejected (by ingest, for good: acknowledged, MQTT 5 with reason 0x99), malformed, unknown_device, unknown_topic, denied (ACL), rate_limited, topic_invalid (wildcard, too deep or long), oversized (packet above max_packet_bytes: connection closed), limit (an adapter's cap), qos_unsupported (QoS 2 from an MQTT 5 client: DISCONNECT 0x9B), too_many_inflight (MQTT 3.1.1 QoS 2 publishes awaiting PUBREL beyond max_inflight: connection closed)."}, []string{"result"}),
		subscribes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_subscribes_total",
			Help: "MQTT subscription filters refused, by result: denied (ACL), too_many (broker.max_subscriptions held already)."}, []string{"result"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_readings_total",
			Help: "Readings carried by publishes, by result: committed, refused (for now), rejected (for good)."}, []string{"result"}),
		fields: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_broker_fields_refused_total",
			Help: "Fields of adapter payloads (Zigbee2MQTT, Tasmota, Home Assistant) that could not be read, such as \"temperature\":\"warm\"; the other fields of the publish were stored."}),
		payloadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_broker_payload_bytes_total",
			Help: "Payload bytes of well-formed publishes: the raw data as devices sent it."}),
	}
	m.subscribes.WithLabelValues("denied")
	m.subscribes.WithLabelValues("too_many")
	for _, r := range []string{"accepted", "no_credentials", "bad_credentials", "locked_out", "panic", "too_many_connecting",
		"too_many_connecting_from_source", "connecting_evicted", "too_many_clients"} {
		m.connects.WithLabelValues(r)
	}
	for _, r := range []string{"committed", "ignored", "refused", "rejected", "malformed", "unknown_device", "unknown_topic", "denied",
		"rate_limited", "topic_invalid", "oversized", "limit", "qos_unsupported", "too_many_inflight"} {
		m.publishes.WithLabelValues(r)
	}
	m.pubCommitted = m.publishes.WithLabelValues("committed")
	m.readCommitted = m.readings.WithLabelValues("committed")
	m.readings.WithLabelValues("refused")
	m.readings.WithLabelValues("rejected")
	m.set = metricset.Must(reg, m.connects, m.publishes, m.subscribes, m.readings, m.payloadBytes, m.fields,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_broker_clients", Help: "Connected MQTT clients."},
			func() float64 { return float64(b.Clients()) }))
	return m
}

func (m *metrics) unregister() { m.set.Unregister() }

// PayloadBytes is the total payload of well-formed publishes so far.
func (b *Broker) PayloadBytes() float64 { return counterValue(b.m.payloadBytes) }
