# hearth — make targets. `make run` runs the agent on embedded defaults; `make test`
# runs every test, installing what the tests need (Debian packages, when root).

GO       ?= go
BIN      := bin
DIST     := dist
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# Packages whose tests also run on arm64 under qemu-user (pure Go, no sockets to
# outside programs): the target architecture is tested, not assumed. ./device/...
# includes device/periph (hub sensors: GPIO, I2C, 1-Wire, HX711).
ARM64_TEST_PKGS := ./device/... ./edge/store/... ./edge/rollup/... ./edge/tagging/... ./firmware-proto/... ./sync/...
# The same on 32-bit ARM (GOARM=7: a Raspberry Pi 2/3 with a 32-bit OS, a Pi Zero 2):
# 32-bit int, 64-bit atomics alignment and the smaller address space are tested there.
ARMV7_TEST_PKGS := $(ARM64_TEST_PKGS)
# A count of executions, not a duration: with a duration, Go 1.26's fuzz coordinator
# can report a bare "context deadline exceeded" failure at the deadline on a loaded
# machine (golang/go#75804, fixed in Go 1.27): CI failed so on FuzzSession, and a
# helper's run on FuzzAppendFrame, with no failing input. 20000x takes 1.5–9 s per
# target here, and about 75 s for FuzzAppendFrame (the slowest, ~270 execs/s).
FUZZTIME ?= 20000x
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run test test-unit test-promises test-release image deb release test-arm64 test-armv7 test-crash bench-mqtt bench-footprint bench-flash bench-attacks fuzz lint cross bench eval deps clean proto proto-check

all: build

## build: the hearth binary for this machine, in bin/ (static, as shipped: no libc)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hearth ./cmd/hearth

## run: the agent on embedded defaults (broker 127.0.0.1:1883, API 127.0.0.1:9880, store ./data, simulated household)
run: build
	./$(BIN)/hearth run

## deps: install what the tests need (mosquitto, mosquitto-clients, qemu-user-static, protobuf-compiler,
## podman and runc for the container smoke test, systemd-analyze for the unit's checks, chromium for the household page's test)
deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	{ command -v qemu-aarch64-static >/dev/null 2>&1 && command -v qemu-arm-static >/dev/null 2>&1; } || missing="$$missing qemu-user-static"; \
	command -v protoc >/dev/null 2>&1 || missing="$$missing protobuf-compiler"; \
	command -v podman >/dev/null 2>&1 || missing="$$missing podman"; \
	command -v runc >/dev/null 2>&1 || missing="$$missing runc"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v dpkg-deb >/dev/null 2>&1 || missing="$$missing dpkg"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

## test: lint, every test with the race detector, the arm64 and armv7 tests under qemu, a short fuzz run, the proto check,
## the release checks (image layout, container smoke test, package install and purge, unit hardening), and
## the promise mutations (docs/promises.md)
test: deps lint test-unit test-arm64 test-armv7 fuzz proto-check test-release test-promises

test-unit:
	$(GO) test -race -count=1 -timeout 20m ./...

## test-crash: the store's crash harness: a writer SIGKILLed at random moments CRASH_CYCLES times,
## every acknowledged reading checked after each restart (`make test` runs it 20 times)
CRASH_CYCLES ?= 150
test-crash:
	$(GO) test -count=1 -timeout 30m -run='^(TestCrashKill9|TestWriteErrorStopsIntake)$$' -v ./edge/store -crash.cycles=$(CRASH_CYCLES)

test-arm64: deps
	GOARCH=arm64 CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec qemu-aarch64-static $(ARM64_TEST_PKGS)

test-armv7: deps
	GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec qemu-arm-static $(ARMV7_TEST_PKGS)

## fuzz: every Fuzz target of the repository (found in the *_test.go files) for FUZZTIME executions each
fuzz:
	@set -e; for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz ./$$(dirname $$f) $$fn"; \
			$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) ./$$(dirname $$f); \
		done; \
	done

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) -C tools/release vet ./...
	$(GO) -C tools/release mod tidy -diff

## cross: static, stripped linux/amd64, linux/arm64 and linux/arm (GOARM=7) binaries in dist/, with their sizes
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/hearth-linux-amd64 ./cmd/hearth
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/hearth-linux-arm64 ./cmd/hearth
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/hearth-linux-armv7 ./cmd/hearth
	@ls -l $(DIST)/hearth-linux-amd64 $(DIST)/hearth-linux-arm64 $(DIST)/hearth-linux-armv7 | awk '{printf "%-28s %6.2f MB\n", $$9, $$5/1000000}'

## eval: tagging precision/recall over 56 simulated homes (unseen seeds), and the meal scores of every real home
## with a manifest in testdata/homes (data read in place from ../shared/data) against its labels
eval:
	$(GO) run ./cmd/tageval -seed 1001 -per 7 -homes testdata/homes

## bench: the benchmarks, with allocations
bench: bench-mqtt
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

## bench-mqtt: N publishers × M QoS 1 messages through the embedded broker into the store, then the
## same load against a plain mosquitto and a bare mochi-mqtt; prints msgs/s, p50/p99 PUBACK latency, CPU µs/msg,
## peak RSS, the ratio to mosquitto and the cost over bare mochi
LOAD_PUBLISHERS ?= 4
LOAD_MESSAGES   ?= 25000
LOAD_INFLIGHT   ?= 32
bench-mqtt: build deps
	$(GO) run ./cmd/hearth-load -hearth $(BIN)/hearth -publishers $(LOAD_PUBLISHERS) -messages $(LOAD_MESSAGES) -inflight $(LOAD_INFLIGHT)

## bench-footprint: the design's footprint load, 200 devices at 1,000 readings/s in all for 30 s: CPU and RSS
bench-footprint: build deps
	$(GO) run ./cmd/hearth-load -hearth $(BIN)/hearth -publishers 200 -messages 150 -rate 5 -inflight 4

## bench-flash: the household load (30 devices, one QoS 1 reading every 3 s each at random phases with jitter, one in
## flight, 120 s) against hearth for each store config of FLASH_CONFIGS ("default": none; "key: value; key: value"),
## mosquitto with persistence on beside each, FLASH_IDLE with no readings after the first, and a bare mochi-mqtt broker
## (nothing stored: the CPU floor of the library hearth's broker is built on) once at the end; prints one Markdown
## table: p99 PUBACK, readings per commit, bytes written per reading and per day, CPU (docs/performance.md)
FLASH_CONFIGS ?= "default" "flash_budget: 134217728" "flash_budget: 1073741824" "flash_budget: 0"
FLASH_IDLE    ?= 60s
bench-flash: build deps
	$(GO) run ./cmd/hearth-load -mode flash -hearth $(BIN)/hearth -publishers 30 -messages 40 -rate 0.3333 -inflight 1 -idle $(FLASH_IDLE) $(FLASH_CONFIGS)

## bench-sync: bytes per appliance per day on the wire for each transport (the default household over 28 days),
## and the time and allocations to build, encode and compress a day's summaries for 50 devices (docs/sync.md)
.PHONY: bench-sync bench-fleet
bench-sync:
	$(GO) test -run='^$$' -bench='^BenchmarkWireBytes$$' -benchtime=1x -count=1 -v ./sync/summary | grep -v '^=== '
	$(GO) test -run='^$$' -bench='^BenchmarkDay50Devices$$' -benchtime=20x -benchmem -count=1 ./sync/summary

## bench-fleet: FLEET_HUBS hubs' outboxes (own store, own clock) against one receiver that is down for a simulated
## day (FLEET_DOWN): steady and peak requests/s, time until every hub drained, duplicates (docs/sync.md).
## FLEET_SPREAD is sync.retry.resume_spread (0: hearth's default)
FLEET_HUBS   ?= 1000
FLEET_SPREAD ?= 0
FLEET_DOWN   ?= 24h
bench-fleet:
	$(GO) test -run='^$$' -bench='^BenchmarkFleet$$' -benchtime=1x -count=1 -timeout 30m -v ./sync/outbox \
		-fleet.hubs=$(FLEET_HUBS) -fleet.spread=$(FLEET_SPREAD) -fleet.outage=$(FLEET_DOWN) | grep -v '^=== '

## image: the OCI image for linux/amd64, linux/arm64 and linux/arm/v7 in one index, built without a
## Docker daemon: an OCI layout in dist/image and the same as dist/hearth-oci.tar (IMAGE_PUSH=REF also pushes it)
RELEASE := $(GO) -C tools/release run .
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
image: cross
	$(RELEASE) image -root $(CURDIR) -version $(VERSION) -revision '$(REVISION)' $(if $(IMAGE_PUSH),-push $(IMAGE_PUSH))

## deb: Debian packages for amd64, arm64 and armhf in dist/
deb: cross
	$(RELEASE) deb -root $(CURDIR) -version $(VERSION)

## release: binaries, image, packages, sbom.json and SHA256SUMS in dist/
release: cross
	$(RELEASE) release -root $(CURDIR) -version $(VERSION) -revision '$(REVISION)'

## test-promises: each mutation of docs/promises.yaml (a one-line break of a README promise) applied to a
## scratch copy must make its named test fail (docs/promises.md lists them)
test-promises:
	$(GO) run ./tools/promises

## test-release: the image layout, the container smoke test (podman), the package's install
## and purge (dpkg, as root), the unit's hardening (systemd-analyze)
test-release: deps
	$(GO) -C tools/release test -count=1 -timeout 20m ./...

## bench-attacks: a device connecting from 127.0.0.1 beside a slowloris (64 half-open connections from
## one address, then from eight) and beside wrong passwords with its name from 127.0.0.2..9 (docs/broker.md)
bench-attacks: build
	$(GO) run ./cmd/hearth-load -mode slowloris -hearth $(BIN)/hearth
	$(GO) run ./cmd/hearth-load -mode slowloris -hearth $(BIN)/hearth -attack-from 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
	$(GO) run ./cmd/hearth-load -mode lockout -hearth $(BIN)/hearth

clean:
	rm -rf $(BIN) $(DIST)

include firmware-proto/proto.mk
include sync/transport/proto.mk
