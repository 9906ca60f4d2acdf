package broker

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/store"
)

// poison is a native reading ingest refuses for good: its timestamp is in the year 2201.
var poison = fmt.Sprintf(`{"signal":"door","value":1,"ts":%d}`, time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())

func ingestSink(st *store.Store) device.Sink { return ingest.New(st, nil) }

// A reading the store can never take is acknowledged (MQTT 5: reason 0x99) and counted,
// so that the device does not send it for ever and what follows it is stored; before,
// an MQTT 3.1.1 client got no PUBACK and sent it again at every reconnect.
func TestPermanentRefusalAcknowledged(t *testing.T) {
	for _, v5 := range []bool{false, true} {
		t.Run(map[bool]string{false: "mqtt3.1.1", true: "mqtt5"}[v5], func(t *testing.T) {
			r := newRig(t, Options{}, ingestSink)
			c := dialRaw(t, r.addr, "fridge1", r.pw["fridge1"], v5)
			topic := "hearth/v1/fridge1/readings"
			c.publish(1, topic, poison)
			c.publish(2, topic, `{"signal":"door","value":0}`)
			// PUBACKs go out in the order of the publishes: the first one read is the
			// poison's, or it got none.
			for _, id := range []uint16{1, 2} {
				typ, p := c.read()
				if typ != 0x40 || binary.BigEndian.Uint16(p) != id {
					t.Fatalf("got packet %#x %x, want the PUBACK of publish %d", typ, p, id)
				}
				code, want := byte(0), byte(0) // MQTT 5 may leave out reason 0x00
				if len(p) > 2 {
					code = p[2]
				}
				if v5 && id == 1 {
					want = 0x99
				}
				if code != want {
					t.Errorf("PUBACK %d: reason %#x, want %#x", id, code, want)
				}
			}
			if rs := r.readings(); len(rs) != 1 || rs[0].Value != 0 {
				t.Fatalf("store holds %+v, want only the reading after the poison", rs)
			}
			if n := r.count("hearth_broker_publishes_total", "rejected"); n != 1 {
				t.Errorf("rejected publishes = %v, want 1", n)
			}
			if n := r.count("hearth_broker_publishes_total", "refused"); n != 0 {
				t.Errorf("refused publishes = %v, want 0 (a final refusal is not a refusal for now)", n)
			}
		})
	}
	// A real client: mosquitto_pub at QoS 1 waits for its PUBACK (it hung until killed).
	r := newRig(t, Options{}, ingestSink)
	if out, err := r.pubAs("fridge1", "-V", "mqttv311", "-q", "1", "-t", "hearth/v1/fridge1/readings", "-m", poison); err != nil {
		t.Fatalf("mosquitto_pub of a reading rejected for good: %v: %s", err, out)
	}
	if n := r.count("hearth_broker_readings_total", "rejected"); n != 1 {
		t.Errorf("rejected readings = %v, want 1", n)
	}
	if rs := r.readings(); len(rs) != 0 {
		t.Errorf("the rejected reading is in the store: %+v", rs)
	}
}

// A Zigbee2MQTT payload with one field that cannot be read has its other fields stored
// and the bad one counted, as the external source does; it was refused whole.
func TestFieldErrorStoresTheRest(t *testing.T) {
	r := newRig(t, Options{}, ingestSink)
	out, err := r.pubAs("fridge1", "-q", "1", "-t", "zigbee2mqtt/Fridge door",
		"-m", `{"battery":90,"humidity":41.5,"temperature":"warm","linkquality":120}`)
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	got := map[device.Signal]float64{}
	for _, rd := range r.readings() {
		got[rd.Signal] = rd.Value
	}
	if len(got) != 2 || got[device.SignalBattery] != 90 || got[device.SignalHumidity] != 41.5 {
		t.Fatalf("store holds %v, want battery 90 and humidity 41.5 (temperature \"warm\" left out)", got)
	}
	if n := r.count("hearth_broker_publishes_total", "committed"); n != 1 {
		t.Errorf("committed publishes = %v, want 1", n)
	}
	if n := r.count("hearth_broker_publishes_total", "malformed"); n != 0 {
		t.Errorf("malformed publishes = %v, want 0", n)
	}
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fields := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "hearth_broker_fields_refused_total" {
			fields = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if fields != 1 {
		t.Errorf("hearth_broker_fields_refused_total = %v, want 1", fields)
	}
}
