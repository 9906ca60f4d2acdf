// Package native reads hearth's own topic schema, for appliances whose firmware
// speaks to hearth directly: hearth/v1/<device>/readings with a JSON reading or a
// batch of them (JSON), and hearth/v1/<device>/{readings,events,inventory}/pb with the
// firmware protocol's protobuf messages (Proto). Append writes the JSON form.
// sample.yaml shows a device's payload and what hearth stores.
package native
