// Package bme280 reads a Bosch BME280 temperature, pressure and humidity sensor over
// I²C in forced mode, with the datasheet's integer compensation.
//
// # Protocol (datasheet BST-BME280-DS002, §5 and §4.2.3)
//
// New reads the chip id (register 0xD0, 0x60 for a BME280; 0x58 is a BMP280, which
// has no humidity) and the calibration words: 26 bytes from 0x88 (dig_T1..dig_P9,
// dig_H1 at 0xA1) and 7 from 0xE1 (dig_H2..dig_H6, H4 and H5 sharing 0xE5's nibbles).
// Sense starts one forced-mode conversion — ctrl_hum (0xF2) first, because a write
// to it takes effect only with the next write to ctrl_meas (0xF4) — waits for the
// measuring bit of status (0xF3) to clear, and reads the eight data bytes from 0xF7:
//
//	0xF7 press_msb  0xF8 press_lsb  0xF9 press_xlsb[7:4]
//	0xFA temp_msb   0xFB temp_lsb   0xFC temp_xlsb[7:4]
//	0xFD hum_msb    0xFE hum_lsb
//
// Temperature is compensated with BME280_compensate_T_int32 (0.01 °C), pressure with
// BME280_compensate_P_int64 (Q24.8 Pa) and humidity with bme280_compensate_H_int32
// (Q22.10 %RH), exactly as the datasheet writes them.
package bme280

import (
	"errors"
	"fmt"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// Addresses the sensor answers on: SDO to GND (0x76) or to VDDIO (0x77).
const (
	AddrLow  uint16 = 0x76
	AddrHigh uint16 = 0x77
)

// Registers.
const (
	regCalib1  = 0x88
	regChipID  = 0xD0
	regCalib2  = 0xE1
	regCtrlHum = 0xF2
	regStatus  = 0xF3
	regCtrlMea = 0xF4
	regConfig  = 0xF5
	regData    = 0xF7

	chipIDBME280 = 0x60
	chipIDBMP280 = 0x58
)

// Oversampling ×1 for each quantity, forced mode; filter off. The conversion then
// takes at most 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms (datasheet §9.1).
const (
	osrs       = 1
	modeForced = 1
	// MeasureTime is the longest a conversion with these settings takes.
	MeasureTime = 10 * time.Millisecond
)

// Errors.
var (
	// ErrChipID: the device at the address is not a BME280.
	ErrChipID = errors.New("bme280: wrong chip id")
	// ErrCalibration: the calibration words are all 0x00 or all 0xFF (a bus stuck
	// low or high, or no chip).
	ErrCalibration = errors.New("bme280: calibration data unreadable")
	// ErrNoData: a data register still holds its reset value (0x80000 / 0x8000): the
	// conversion did not run.
	ErrNoData = errors.New("bme280: no conversion result")
	// ErrBusy: the measuring bit did not clear in time.
	ErrBusy = errors.New("bme280: conversion did not finish")
	// ErrRange: a value outside the sensor's operating range (-40..85 °C,
	// 300..1100 hPa).
	ErrRange = errors.New("bme280: value out of the sensor's range")
)

// Calibration holds the trimming parameters read from the chip.
type Calibration struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1                             uint8
	H2                             int16
	H3                             uint8
	H4, H5                         int16
	H6                             int8
}

// Env is one measurement.
type Env struct {
	Temperature float64 // °C, 0.01 steps
	Pressure    float64 // hPa
	Humidity    float64 // %RH, 0..100
	// Raw ADC values, for stuck-value detection.
	RawT, RawP, RawH int32
}

// Opts configure a Dev; nil means the defaults.
type Opts struct {
	// Sleep waits for a conversion (default time.Sleep). Tests pass a no-op.
	Sleep func(time.Duration)
}

// Dev is one sensor on a bus.
type Dev struct {
	d     i2c.Dev
	cal   Calibration
	sleep func(time.Duration)
}

// New checks the chip id at addr, reads the calibration and turns the IIR filter
// off.
func New(bus i2c.Bus, addr uint16, o *Opts) (*Dev, error) {
	d := &Dev{d: i2c.Dev{Bus: bus, Addr: addr}, sleep: time.Sleep}
	if o != nil && o.Sleep != nil {
		d.sleep = o.Sleep
	}
	var id [1]byte
	if err := d.d.Tx([]byte{regChipID}, id[:]); err != nil {
		return nil, fmt.Errorf("bme280 at %#x: chip id: %w", addr, err)
	}
	switch id[0] {
	case chipIDBME280:
	case chipIDBMP280:
		return nil, fmt.Errorf("bme280 at %#x: %w %#02x: a BMP280 (no humidity), not a BME280", addr, ErrChipID, id[0])
	default:
		return nil, fmt.Errorf("bme280 at %#x: %w %#02x, want %#02x", addr, ErrChipID, id[0], chipIDBME280)
	}
	var c1 [26]byte
	var c2 [7]byte
	if err := d.d.Tx([]byte{regCalib1}, c1[:]); err != nil {
		return nil, fmt.Errorf("bme280 at %#x: calibration 0x88: %w", addr, err)
	}
	if err := d.d.Tx([]byte{regCalib2}, c2[:]); err != nil {
		return nil, fmt.Errorf("bme280 at %#x: calibration 0xE1: %w", addr, err)
	}
	cal, err := ParseCalibration(c1, c2)
	if err != nil {
		return nil, fmt.Errorf("bme280 at %#x: %w", addr, err)
	}
	d.cal = cal
	if err := d.d.Tx([]byte{regConfig, 0}, nil); err != nil {
		return nil, fmt.Errorf("bme280 at %#x: config: %w", addr, err)
	}
	return d, nil
}

// Calibration returns the parameters read by New.
func (d *Dev) Calibration() Calibration { return d.cal }

// ParseCalibration decodes the two calibration blocks (little-endian words).
func ParseCalibration(c1 [26]byte, c2 [7]byte) (Calibration, error) {
	u16 := func(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
	s16 := func(b []byte) int16 { return int16(u16(b)) }
	allSame := func(v byte) bool {
		for _, b := range c1[:24] {
			if b != v {
				return false
			}
		}
		return true
	}
	if allSame(0) || allSame(0xFF) {
		return Calibration{}, fmt.Errorf("%w: 0x88..0x9F all %#02x", ErrCalibration, c1[0])
	}
	return Calibration{
		T1: u16(c1[0:]), T2: s16(c1[2:]), T3: s16(c1[4:]),
		P1: u16(c1[6:]), P2: s16(c1[8:]), P3: s16(c1[10:]), P4: s16(c1[12:]), P5: s16(c1[14:]),
		P6: s16(c1[16:]), P7: s16(c1[18:]), P8: s16(c1[20:]), P9: s16(c1[22:]),
		H1: c1[25],
		H2: s16(c2[0:]), H3: c2[2],
		H4: int16(int8(c2[3]))<<4 | int16(c2[4]&0x0F),
		H5: int16(int8(c2[5]))<<4 | int16(c2[4]>>4),
		H6: int8(c2[6]),
	}, nil
}

// Sense runs one forced-mode conversion and returns it compensated.
func (d *Dev) Sense() (Env, error) {
	if err := d.d.Tx([]byte{regCtrlHum, osrs}, nil); err != nil {
		return Env{}, fmt.Errorf("bme280 at %#x: ctrl_hum: %w", d.d.Addr, err)
	}
	if err := d.d.Tx([]byte{regCtrlMea, osrs<<5 | osrs<<2 | modeForced}, nil); err != nil {
		return Env{}, fmt.Errorf("bme280 at %#x: ctrl_meas: %w", d.d.Addr, err)
	}
	d.sleep(MeasureTime)
	var st [1]byte
	for i := 0; ; i++ {
		if err := d.d.Tx([]byte{regStatus}, st[:]); err != nil {
			return Env{}, fmt.Errorf("bme280 at %#x: status: %w", d.d.Addr, err)
		}
		if st[0]&0x08 == 0 {
			break
		}
		if i == 3 {
			return Env{}, fmt.Errorf("bme280 at %#x: %w (status %#02x after %d polls)", d.d.Addr, ErrBusy, st[0], i+1)
		}
		d.sleep(MeasureTime / 4)
	}
	var b [8]byte
	if err := d.d.Tx([]byte{regData}, b[:]); err != nil {
		return Env{}, fmt.Errorf("bme280 at %#x: data: %w", d.d.Addr, err)
	}
	return d.cal.Decode(b)
}

// Decode compensates the eight data bytes read from 0xF7.
func (c *Calibration) Decode(b [8]byte) (Env, error) {
	e := Env{
		RawP: int32(b[0])<<12 | int32(b[1])<<4 | int32(b[2])>>4,
		RawT: int32(b[3])<<12 | int32(b[4])<<4 | int32(b[5])>>4,
		RawH: int32(b[6])<<8 | int32(b[7]),
	}
	if e.RawT == 0x80000 || e.RawP == 0x80000 || e.RawH == 0x8000 {
		return e, fmt.Errorf("%w: raw T %#x P %#x H %#x", ErrNoData, e.RawT, e.RawP, e.RawH)
	}
	t, tFine := c.CompensateT(e.RawT)
	p := c.CompensateP(e.RawP, tFine)
	h := c.CompensateH(e.RawH, tFine)
	e.Temperature = float64(t) / 100
	e.Pressure = float64(p) / 256 / 100
	e.Humidity = float64(h) / 1024
	if e.Temperature < -40 || e.Temperature > 85 || e.Pressure < 300 || e.Pressure > 1100 {
		return e, fmt.Errorf("%w: %.2f °C, %.2f hPa", ErrRange, e.Temperature, e.Pressure)
	}
	return e, nil
}

// CompensateT is BME280_compensate_T_int32: temperature in 0.01 °C, and t_fine for
// the other two.
func (c *Calibration) CompensateT(adcT int32) (t, tFine int32) {
	var1 := (((adcT >> 3) - (int32(c.T1) << 1)) * int32(c.T2)) >> 11
	var2 := (((((adcT >> 4) - int32(c.T1)) * ((adcT >> 4) - int32(c.T1))) >> 12) * int32(c.T3)) >> 14
	tFine = var1 + var2
	return (tFine*5 + 128) >> 8, tFine
}

// CompensateP is BME280_compensate_P_int64: pressure in Pa as Q24.8 (value/256 Pa).
func (c *Calibration) CompensateP(adcP, tFine int32) uint32 {
	var1 := int64(tFine) - 128000
	var2 := var1 * var1 * int64(c.P6)
	var2 += (var1 * int64(c.P5)) << 17
	var2 += int64(c.P4) << 35
	var1 = ((var1 * var1 * int64(c.P3)) >> 8) + ((var1 * int64(c.P2)) << 12)
	var1 = ((int64(1) << 47) + var1) * int64(c.P1) >> 33
	if var1 == 0 {
		return 0 // avoid a division by zero
	}
	p := int64(1048576 - adcP)
	p = (((p << 31) - var2) * 3125) / var1
	var1 = (int64(c.P9) * (p >> 13) * (p >> 13)) >> 25
	var2 = (int64(c.P8) * p) >> 19
	p = ((p + var1 + var2) >> 8) + (int64(c.P7) << 4)
	return uint32(p)
}

// CompensateH is bme280_compensate_H_int32: relative humidity as Q22.10 (value/1024
// %RH), clamped to 0..100 %RH.
func (c *Calibration) CompensateH(adcH, tFine int32) uint32 {
	v := tFine - 76800
	v = ((((adcH << 14) - (int32(c.H4) << 20) - (int32(c.H5) * v)) + 16384) >> 15) *
		(((((((v*int32(c.H6))>>10)*(((v*int32(c.H3))>>11)+32768))>>10)+2097152)*int32(c.H2) + 8192) >> 14)
	v -= ((((v >> 15) * (v >> 15)) >> 7) * int32(c.H1)) >> 4
	v = max(v, 0)
	v = min(v, 419430400)
	return uint32(v >> 12)
}
