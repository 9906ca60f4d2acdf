package config

// SerialPort is one appliance on a UART (device/serial). Owned by the serial source;
// documented under `serial:` in configs/hearth.yaml.
type SerialPort struct {
	Path string `yaml:"path"`
}

// validateSerial checks the serial section.
func (c *Config) validateSerial(bad func(key, format string, a ...any)) {}
