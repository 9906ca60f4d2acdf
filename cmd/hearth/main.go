// Command hearth is the home-hub agent: it reads appliances over MQTT and serial,
// keeps their readings durably, learns usage-pattern tags on the device and sends
// only consented, pseudonymous summaries upstream.
//
//	hearth run [--config FILE]     run the agent (no config: the embedded defaults)
//	hearth config check FILE       validate a configuration file
//	hearth status [--addr A]       the running agent's status
//	hearth tags [--addr A] [--json] [--explain NAME]
//	hearth readings DEVICE [--signal S] [--last N] [--json]
//	hearth sensors scan [--json]   the hub's GPIO chips, I2C devices, 1-Wire probes
//	hearth version
//
// cmd/hearth is the only package that sees the whole graph: it reads the config,
// builds the components and runs them under one context.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `hearth — the home-hub agent

usage:
  hearth run [--config FILE]                      run the agent (no --config: embedded defaults)
  hearth config check FILE                        check a configuration file; exit 1 listing every error
  hearth status [--addr HOST:PORT] [--json]       status of the running agent
  hearth ready [--addr HOST:PORT]                 exit 0 when the running agent is ready (/readyz), else 1 with why
  hearth tags [--addr HOST:PORT] [--json] [--explain NAME]
                                                  the tags the running agent has learned
  hearth readings DEVICE [--signal SIGNAL] [--last N] [--addr HOST:PORT] [--json]
                                                  the last readings the running agent stored for DEVICE
  hearth replay --config FILE --input FILE [--format ha-csv|jsonl] [--json]
                                                  replay a recorded history through ingest, rollups and tagging
  hearth device add NAME --kind KIND | list | remove NAME | proposals | accept NAME | unaccept NAME
                                                  MQTT devices: credentials and discovery (hearth device for help)
  hearth consent [grant CATEGORY | withdraw CATEGORY]
                                                  what may leave the home: usage, tags, sensitive, cross_border
  hearth forget --device NAME | --household       erase, here and upstream (the agent restarts in place)
  hearth audit [--last N] [--show SEQ]            what left the home, consent changes, erasures
  hearth export [-o FILE]                         everything hearth holds about the household (JSON lines)
  hearth sensors scan [--json]                    GPIO chips, I2C devices and 1-Wire probes on this hub,
                                                  to write hub_sensors: with
  hearth version                                  print the version
`

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return cmdConfigCheck(args[2:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout)
	case "tags":
		err = cmdTags(ctx, args[1:], stdout)
	case "ready":
		err = cmdReady(ctx, args[1:], stdout)
	case "readings":
		err = cmdReadings(ctx, args[1:], stdout)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "device":
		err = cmdDevice(ctx, args[1:], stdout, stderr)
	case "sensors":
		err = cmdSensors(args[1:], stdout, stderr)
	case "consent":
		err = cmdConsent(ctx, args[1:], stdout, stderr)
	case "forget":
		err = cmdForget(ctx, args[1:], os.Stdin, stdout, stderr)
	case "audit":
		err = cmdAudit(ctx, args[1:], stdout, stderr)
	case "export":
		err = cmdExport(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hearth: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			if !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "hearth: %v\n", err)
			}
			return 2
		}
		fmt.Fprintf(stderr, "hearth: %v\n", err)
		return 1
	}
	return 0
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return fmt.Sprintf("hearth %s %s/%s %s", v, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
