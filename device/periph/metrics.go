package periph

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	cs       []prometheus.Collector
	up       *prometheus.GaugeVec
	opens    *prometheus.CounterVec
	lost     *prometheus.CounterVec
	readings *prometheus.CounterVec
	faults   *prometheus.CounterVec
	value    *prometheus.GaugeVec
}

// sensorMetrics are one sensor's children of the vectors.
type sensorMetrics struct {
	opens     *prometheus.CounterVec // by result
	lost      prometheus.Counter
	committed prometheus.Counter
	refused   prometheus.Counter
	rejected  prometheus.Counter
	faults    *prometheus.CounterVec // by reason
}

func newMetrics() *metrics {
	m := &metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hearth_hub_sensor_up",
			Help: "1 while the hub sensor is open and read; 0 while it is missing or being opened again."}, []string{"sensor"}),
		opens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_hub_sensor_opens_total",
			Help: "Attempts to open a hub sensor (its pin or bus, and the device on it), by result: ok, failed (retried with back-off)."},
			[]string{"sensor", "result"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_hub_sensor_lost_total",
			Help: "Times an open hub sensor failed fail_after times in a row and was opened again."}, []string{"sensor"}),
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_hub_sensor_readings_total",
			Help: "Readings of hub sensors handed to the store, by result: committed, refused (submitted again after back-off), rejected (refused for good: dropped)."},
			[]string{"sensor", "result"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hearth_hub_sensor_faults_total",
			Help: "Bad data and failed reads of hub sensors, by reason (docs/hub-sensors.md lists them)."},
			[]string{"sensor", "reason"}),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hearth_hub_sensor_value",
			Help: "The last committed value of a hub sensor's signal (calibration aid: weight in grams, temperature in °C)."},
			[]string{"sensor", "signal"}),
	}
	m.cs = []prometheus.Collector{m.up, m.opens, m.lost, m.readings, m.faults, m.value}
	return m
}

func (m *metrics) forSensor(name string, reasons []string) *sensorMetrics {
	sm := &sensorMetrics{
		opens:     m.opens.MustCurryWith(prometheus.Labels{"sensor": name}),
		lost:      m.lost.WithLabelValues(name),
		committed: m.readings.WithLabelValues(name, "committed"),
		refused:   m.readings.WithLabelValues(name, "refused"),
		rejected:  m.readings.WithLabelValues(name, "rejected"),
		faults:    m.faults.MustCurryWith(prometheus.Labels{"sensor": name}),
	}
	m.up.WithLabelValues(name)
	sm.opens.WithLabelValues("ok")
	sm.opens.WithLabelValues("failed")
	for _, r := range reasons {
		sm.faults.WithLabelValues(r)
	}
	return sm
}
