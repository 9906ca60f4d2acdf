package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"

	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// serveMochi runs a bare mochi-mqtt broker on addr until killed: the library hearth's
// broker is built on, with the same capabilities and buffer sizes as edge/broker
// (broker.max_inflight 64, max_pending_writes 64), every client allowed, no hooks
// beyond that, nothing stored. Against it the load measures the floor the library
// sets, which hearth (authentication, decoding, a durable commit per PUBACK) builds on.
func serveMochi(addr string, inflight int) error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.ReceiveMaximum = uint16(max(inflight, 64))
	caps.MaximumInflight = uint16(max(inflight, 64))
	caps.MaximumClientWritesPending = 64
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	// The $SYS refresh is off, as in edge/broker (a wake-up and a stop of the world
	// every second, which no client of hearth can read).
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientNetWriteBufferSize: 2048, ClientNetReadBufferSize: 2048, SysTopicResendInterval: math.MaxInt64 / int64(time.Second)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "load", Address: addr})); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return srv.Close()
}

// runMochi runs the load against a bare mochi broker in a child process (this
// program, re-run with -serve-mochi), so that its CPU and RSS are its own.
func runMochi(o loadOpts) (result, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, "-serve-mochi", addr, "-inflight", fmt.Sprint(o.inflight))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	if err := waitListening(addr, 10*time.Second); err != nil {
		return result{}, err
	}
	creds := make([][2]string, o.pubs)
	for i := range creds {
		creds[i] = [2]string{fmt.Sprintf("load-%d", i), "x"}
	}
	res, err := load("mochi", cmd.Process.Pid, addr, creds, o, nil)
	if err != nil {
		return res, err
	}
	return res, o.idleAfter(&res, cmd.Process.Pid)
}
