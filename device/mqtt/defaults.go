package mqtt

import "time"

// The defaults of the adapters and of the external source, written once: each
// adapter's DefaultOptions returns these, and internal/config takes its mqtt.*
// defaults from here (it cannot import the adapters themselves: their tests read
// their sample configuration with internal/config).
const (
	DefaultZigbee2MQTTBase  = "zigbee2mqtt"
	DefaultTasmotaFullTopic = "%prefix%/%topic%/"

	DefaultHomieBase          = "homie"
	DefaultHomieMaxDevices    = 256
	DefaultHomieMaxNodes      = 32
	DefaultHomieMaxProperties = 256

	DefaultDiscoveryPrefix       = "homeassistant"
	DefaultDiscoveryMaxProposals = 256

	DefaultExternalClientID              = "hearth"
	DefaultExternalMaxInflight           = 256
	DefaultExternalMaxExtraSubscriptions = 256
	DefaultExternalReconnectMax          = time.Minute
	DefaultExternalMaxTopicLabels        = 64
)
