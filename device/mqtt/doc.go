// Package mqtt holds what the MQTT adapters share: the Decoder and Learner contracts,
// the errors they answer with, the mappings that bind a source's names to hearth
// devices, and the Router, Layered and Adapters that compose adapters for a source.
// Each adapter lives in its own folder, with a sample.yaml (its configuration keys
// and a real payload) and the shared conformance suite (adaptertest):
//
//	native/        hearth's own topics: hearth/v1/<device>/readings (JSON), .../pb (protobuf)
//	zigbee2mqtt/   Zigbee2MQTT device states
//	tasmota/       Tasmota SENSOR, STATE, POWER and LWT messages
//	homie/         Homie v4 devices: values (Decoder) and $-attributes (Learner)
//	hadiscovery/   Home Assistant MQTT discovery: proposals (Learner), accepted entities' states (State)
//	external/      the Source for a broker the household already runs
//	adaptertest/   the conformance suite every adapter passes, and the corpus helpers
//
// # Decoders and learners
//
// A Decoder is a pure function of (topic, payload, now) and its configuration, which
// is immutable after construction: decoding a message twice gives the same readings,
// and nothing a decoder decoded changes how it decodes the next message. What devices
// say about themselves — Home Assistant discovery configs, Homie $datatype and $unit —
// is taken by a Learner, which hands what it learned to its decoder as a new value
// (copy-on-write: an atomically swapped, never modified table), never by changing a
// decoder inside Decode.
//
// Sources do not call decoders directly: they hand each message to an Adapters, which
// offers it to the learners and then to the decoder. The embedded broker (edge/broker)
// and the external-broker source (external) are the two sources; both acknowledge a
// message only after its readings are committed, and both count what they cannot
// store by Reason.
//
// # Errors
//
// A decoder answers ErrNotMine for a topic it does not read, so that a Router can try
// the next one; ErrMalformed (a *FieldErrors when only some fields could not be read:
// it comes with the readings of the others), ErrUnknownDevice and ErrLimit for a
// message it read but cannot turn into readings. Every error names what and where.
package mqtt
