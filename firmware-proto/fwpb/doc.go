// Package fwpb holds the protobuf messages of hearth's appliance firmware protocol,
// generated from firmware-proto/hearth_fw.proto by protoc-gen-go. Do not edit the
// .pb.go files: change the .proto and run `make proto`; `make proto-check` fails when
// they are stale.
//
// Each message travels alone in one frame whose type byte names it (see
// firmware-proto/SPEC.md and package frame): Hello, Readings, Events and Inventory from
// device to hub; Ack, Nack and TimeSync from hub to device.
package fwpb
