package config

// MQTT configures MQTT beyond the embedded broker's listener: the external-broker
// source and the mappings of real devices' topics (device/mqtt). Documented under
// `mqtt:` in configs/hearth.yaml.
type MQTT struct{}

// validateMQTT checks the mqtt section.
func (c *Config) validateMQTT(bad func(key, format string, a ...any)) {}
