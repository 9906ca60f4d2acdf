// Package adaptertest is the conformance suite every MQTT adapter passes, and the
// helpers of the adapters' own tests.
//
// # The suite
//
// Run(t, Adapter{...}) checks the promises every adapter makes, with the real messages
// its harness gives (its testdata corpus and the captures in
// ../shared/data/mqtt-formats):
//
//   - RealMessages: each real message gives the readings the harness says, offered to
//     the learner first and then to the decoder, as mqtt.Adapters does;
//   - NotMine: a topic of another adapter, or of nobody, is mqtt.ErrNotMine for the
//     decoder and the learner, and a topic with readings is none of the learner's;
//   - HostileInput: arbitrary bytes (fixed hostile payloads, real payloads cut and
//     corrupted, seeded random bytes) and impossible topics never panic, never give
//     an invalid reading or an error of no documented class (Check);
//   - Pure: decoding the real messages in order and in reverse gives the same result
//     for each, before and after the learner learned, and decoding a message twice
//     gives the same readings: Decode is a pure function of (topic, payload, now) and
//     what it was configured or handed;
//   - Concurrent: decoding from several goroutines at once gives the same results
//     (run with -race);
//   - Limits: a payload one byte over the adapter's bound is refused, not parsed;
//     messages over its other bounds are refused; a learner flooded past its cap
//     answers mqtt.ErrLimit and holds no more than the cap.
//
// Check and CheckLearn are the per-message part; the fuzz targets of the adapters call
// them on every input. CheckSample keeps an adapter's sample.yaml true: its
// configuration is one hearth accepts and its example messages give the readings it
// states.
//
// # Corpus files
//
// Each adapter's testdata/*.tsv holds real messages, one a line:
// name<TAB>topic<TAB>payload (payload may be empty; # starts a comment). Each file's
// header names its sources and their terms; the messages are short examples copied
// from /work/shared/data/mqtt-formats (see its SOURCE.txt), kept for testing only.
// An adapter's tests call Corpus.CheckAllUsed so that every line is asserted by some
// test.
package adaptertest
