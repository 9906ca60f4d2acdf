// Package periph is the device.Source for sensors wired to the hub's own pins: reed
// switches and buttons on GPIO, SHT3x and BME280 sensors on I²C, DS18B20 probes on
// 1-Wire, and load cells behind an HX711. It reaches them through periph.io — the
// conn/v3 interfaces (gpio.PinIO, i2c.Bus) and, on a real board, host/v3 — and the
// kernel's w1 sysfs files. (The name: these are the hub's peripherals, and the
// package is where periph.io enters hearth; "gpio" would name one bus of four and
// clash with periph's own gpio package, which every file here imports.)
//
// # Drivers
//
// Each driver is a subpackage written against conn/v3's interfaces and tested with
// periph's fakes (gpiotest.Pin, i2ctest.Playback) and this package's periphtest:
// reed (edges, debounce, active level), sht3x, bme280, ds18b20 and hx711. The Source
// turns what they measure into device.Readings:
//
//	bus      driver   signals (unit)
//	gpio     reed     door or active (1 open/active, 0 closed)
//	i2c      sht3x    temperature (°C), humidity (%RH)
//	i2c      bme280   temperature (°C), humidity (%RH), pressure (hPa)
//	onewire  ds18b20  temperature (°C)
//	hx711    hx711    weight (g); inventory (+1 stocked, -1 taken) after a door closes
//
// # Promises
//
// As the serial and MQTT sources: readings go to the Sink and count (metrics,
// status, the door state a load cell compares against, the weight last reported)
// only once the Sink reports them durable. Readings carry the source's boot id and
// a sequence per device, so a batch the Sink refused is submitted again, after
// back-off, without being stored twice.
//
// Bad hardware never ends Run. A sensor whose pin or bus is missing, or whose device
// does not answer at open, is reported — logged, hearth_hub_sensor_up 0,
// hearth_hub_sensor_opens_total{result="failed"}, State "down" with the error in
// Status — and opened again with exponential back-off (RetryMin … RetryMax). An open
// sensor that fails FailAfter reads in a row is closed and treated the same way.
// Garbage from a sensor that answers — a CRC mismatch, a value it cannot produce,
// a raw value stuck for stuck_after readings, an HX711 word read with the clock held
// high too long — is dropped and counted by reason in
// hearth_hub_sensor_faults_total.
//
// # Load cells and inventory
//
// A load cell reports its weight when it moved by the deadband or the heartbeat
// passed. When its HX711 names a door (a gpio sensor), the weight Settle after the
// door closed is compared with the weight before it opened; a change of at least
// MinChange grams becomes inventory readings (+1 stocked, -1 taken; one per
// ItemGrams when set) labelled with the shelf's food category — the readings the
// food tags (configs/tags.yaml, stocked(...)) already count.
//
// # Concurrency
//
// Run starts one goroutine per sensor and returns when all have stopped. A GPIO
// sensor's pending WaitForEdge is ended by Halt when ctx ends; the other drivers
// return within one read (at most the HX711's ready timeout or a w1 conversion,
// about a second).
package periph
