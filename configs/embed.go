// Package configs holds hearth's shipped configuration: hearth.yaml (every key
// commented), tags.yaml (the standard tag rules) and the systemd unit.
// The tag rules are embedded so that hearth runs with no files beside it.
package configs

import _ "embed"

// Tags is the standard tag rule set, configs/tags.yaml.
//
//go:embed tags.yaml
var Tags []byte

// Hearth is the documented default configuration, configs/hearth.yaml.
//
//go:embed hearth.yaml
var Hearth []byte
