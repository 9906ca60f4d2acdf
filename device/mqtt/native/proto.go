package native

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/fwconv"
	"github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/internal/conv"
	"github.com/hearth-iot/hearth/firmware-proto/fwpb"
)

// Proto decodes hearth's native topics with protobuf payloads: the message
// types of the firmware UART protocol (firmware-proto/hearth_fw.proto), so a device
// that speaks the protocol on a UART speaks it over MQTT too, without framing:
//
//	hearth/v1/<device>/readings/pb   a fwpb.Readings message
//	hearth/v1/<device>/events/pb     a fwpb.Events message
//	hearth/v1/<device>/inventory/pb  a fwpb.Inventory message
//
// Items convert to readings by SPEC.md §8.2 (device/fwconv). A batch's boot_id is the
// boot the sequence numbers belong to. The whole payload is refused when any item is
// invalid: the device then knows nothing of it was kept. KindOf gives a registered
// device's kind and refuses unregistered ones (mqtt.ErrUnknownDevice); protobuf items carry
// no kind.
type Proto struct {
	KindOf func(deviceID string) (device.Kind, bool)
}

// Decode implements mqtt.Decoder.
func (n Proto) Decode(topic string, payload []byte, now time.Time) ([]device.Reading, error) {
	rest, ok := strings.CutPrefix(topic, Prefix)
	if !ok {
		return nil, mqtt.ErrNotMine
	}
	id, what, ok := strings.Cut(rest, "/")
	if !ok {
		return nil, mqtt.ErrNotMine
	}
	what, ok = strings.CutSuffix(what, "/pb")
	if !ok || (what != "readings" && what != "events" && what != "inventory") {
		return nil, mqtt.ErrNotMine
	}
	if err := device.ValidID(id); err != nil {
		return nil, fmt.Errorf("%w: topic %q: %v", mqtt.ErrMalformed, conv.Truncate(topic, 128), err)
	}
	kind := device.Kind("")
	if n.KindOf != nil {
		k, ok := n.KindOf(id)
		if !ok {
			return nil, fmt.Errorf("%w: %q (topic %q)", mqtt.ErrUnknownDevice, id, conv.Truncate(topic, 128))
		}
		kind = k
	}
	if !kind.Valid() {
		return nil, fmt.Errorf("%w: device %q: protobuf payloads need a registered device kind", mqtt.ErrUnknownDevice, id)
	}
	var out []device.Reading
	add := func(seq, mono uint64, wall int64, boot, sent uint64, conv func(*device.Reading) error) error {
		if seq != 0 && boot == 0 {
			// boot_id 0 ("the current session's boot") means something only on a UART
			// after a Hello; over MQTT it would let a reboot's sequence numbers be
			// taken for retransmissions, acknowledged and dropped.
			return fmt.Errorf("seq %d with boot_id 0: over MQTT every batch must carry its boot id", seq)
		}
		var r device.Reading
		fwconv.Stamp(&r, id, kind, boot, seq, mono, wall, sent, now)
		if err := conv(&r); err != nil {
			return err
		}
		if err := fwconv.Check(&r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	}
	var err error
	switch what {
	case "readings":
		var m fwpb.Readings
		if err = proto.Unmarshal(payload, &m); err != nil {
			break
		}
		if len(m.Readings) > MaxBatch {
			return nil, fmt.Errorf("%w: device %q: %d readings in one payload (max %d)", mqtt.ErrMalformed, id, len(m.Readings), MaxBatch)
		}
		for _, it := range m.Readings {
			if err = add(it.Seq, it.MonoMs, it.WallMs, m.BootId, m.SentMonoMs, func(r *device.Reading) error { return fwconv.FromReading(r, it) }); err != nil {
				break
			}
		}
	case "events":
		var m fwpb.Events
		if err = proto.Unmarshal(payload, &m); err != nil {
			break
		}
		if len(m.Events) > MaxBatch {
			return nil, fmt.Errorf("%w: device %q: %d events in one payload (max %d)", mqtt.ErrMalformed, id, len(m.Events), MaxBatch)
		}
		for _, ev := range m.Events {
			if err = add(ev.Seq, ev.MonoMs, ev.WallMs, m.BootId, m.SentMonoMs, func(r *device.Reading) error { return fwconv.FromEvent(r, ev) }); err != nil {
				break
			}
		}
	case "inventory":
		var m fwpb.Inventory
		if err = proto.Unmarshal(payload, &m); err != nil {
			break
		}
		if len(m.Changes) > MaxBatch {
			return nil, fmt.Errorf("%w: device %q: %d changes in one payload (max %d)", mqtt.ErrMalformed, id, len(m.Changes), MaxBatch)
		}
		for _, c := range m.Changes {
			if err = add(c.Seq, c.MonoMs, c.WallMs, m.BootId, m.SentMonoMs, func(r *device.Reading) error { return fwconv.FromChange(r, c) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: device %q %s: %v", mqtt.ErrMalformed, id, what, err)
	}
	return out, nil
}
