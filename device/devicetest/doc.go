// Package devicetest holds what tests of sources share: a fake Sink that commits,
// refuses (for now or for good) or holds what it is given, and a suite every
// device.Source passes.
//
// # The suite
//
// Run(t, Harness{...}) starts a fresh source for each check, hands it a Sink and drives
// the simulated device the harness puts in front of it:
//
//   - Name: Name() is not empty and does not change before, during or after Run;
//   - RunReturnsOnCancel: Run returns nil once its context is cancelled, at once and
//     while serving; nothing reaches the sink after it returned; what the harness
//     owns (the device's end of the link, a broker) is not closed by the source;
//   - ReadingsReachSinkValid: readings reach the sink valid (device.Reading.Validate),
//     without a hub time, once each, in the order the device sent them, and each is
//     acknowledged;
//   - AckAfterCommit: nothing is acknowledged to the device before the sink's
//     done(nil): a held commit keeps the message pending, its release acknowledges it;
//   - PermanentRefusalAcked: a refusal for good (Sink.Permanent) is acknowledged, so
//     that the device does not send it for ever, and counted; what follows is taken;
//   - RetryableRefusalNotAcked: a refusal that may pass (Sink.Retryable: a full store)
//     is not acknowledged, so that the device keeps it; the source recovers and takes
//     what follows.
//
// # Adding a source
//
// A source needs a small harness, in its own tests (see device/serial, device/periph, device/mqtt/external
// and edge/broker):
//
//	func TestSourceSuite(t *testing.T) {
//		devicetest.Run(t, devicetest.Harness{
//			Sink: devicetest.SinkOptions{Retryable: store.ErrQuota, Permanent: ingest.ErrRejected},
//			Start: func(t *testing.T) devicetest.Instance {
//				reg := prometheus.NewRegistry()
//				src := mysource.New(&mysource.Options{..., Retryable: ingest.Retryable, Registerer: reg})
//				return devicetest.Instance{Source: src, Device: newFakeDevice(t, ...),
//					Rejected: func() float64 { return counter(reg, "hearth_mysource_rejected_total") }}
//			},
//		})
//	}
//
// The Device is the other end of the source's real transport (a pty for a UART, a
// broker for MQTT, a simulated pin or I2C bus for hub sensors): Send makes it send one
// reading of a given value; First and Acked report what it learned (an ACK frame, a
// PUBACK, a Nack BUSY, a connection closed with the message unacknowledged); Sync is a
// round trip behind the acknowledgements, where the transport has one. A source whose
// device cannot be told anything (a reed switch on a GPIO pin has no acknowledgement)
// sets Harness.NoDeviceAcks to say so; its Device reports Acked once a reading is
// committed and never Refused, AckAfterCommit is skipped with that reason, and the
// refusal checks ask that a reading refused for now is committed later (the source
// keeps and submits it again) and that one refused for good is counted.
package devicetest
