// Package homie reads Homie v4 devices mapped with source "homie" (mqtt.mappings). It
// has two halves (see New): a Learner that keeps what each device says about itself
// in its $-attributes ($datatype, $unit, $format, $state, ...), and a Decoder that
// reads property values by what the Learner published last. The Learner never
// changes a table the Decoder may be reading: each change publishes a new one.
// sample.yaml shows the configuration keys and real messages.
package homie
