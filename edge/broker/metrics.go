package broker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg          prometheus.Registerer
	cs           []prometheus.Collector
	connects     *prometheus.CounterVec
	publishes    *prometheus.CounterVec
	readings     *prometheus.CounterVec
	payloadBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b *Broker) *metrics {
	m := &metrics{reg: reg,
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_connects_total",
			Help: "MQTT connection attempts, by result: accepted, bad_credentials, locked_out."}, []string{"result"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_publishes_total",
			Help: "MQTT publishes, by result: committed, refused (by the store), malformed, unknown_device, denied (ACL)."}, []string{"result"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_broker_readings_total",
			Help: "Readings carried by publishes, by result: committed, refused."}, []string{"result"}),
		payloadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "hearth_broker_payload_bytes_total",
			Help: "Payload bytes of well-formed publishes: the raw data as devices sent it."}),
	}
	for _, r := range []string{"accepted", "bad_credentials", "locked_out"} {
		m.connects.WithLabelValues(r)
	}
	for _, r := range []string{"committed", "refused", "malformed", "unknown_device", "denied"} {
		m.publishes.WithLabelValues(r)
	}
	m.readings.WithLabelValues("committed")
	m.readings.WithLabelValues("refused")
	m.cs = []prometheus.Collector{m.connects, m.publishes, m.readings, m.payloadBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hearth_broker_clients", Help: "Connected MQTT clients."},
			func() float64 { return float64(b.Clients()) })}
	if reg != nil {
		for _, c := range m.cs {
			reg.MustRegister(c)
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}

// PayloadBytes is the total payload of well-formed publishes so far.
func (b *Broker) PayloadBytes() float64 { return counterValue(b.m.payloadBytes) }
