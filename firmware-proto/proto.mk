# firmware-proto/proto.mk: generate the Go code for firmware-proto/hearth_fw.proto.
#
# Included by the top-level Makefile (`include firmware-proto/proto.mk`), or run alone
# from the repository root:
#
#	make -f firmware-proto/proto.mk proto         regenerate firmware-proto/fwpb
#	make -f firmware-proto/proto.mk proto-check   fail if the committed code is stale
#
# Tools: Debian's protoc (package protobuf-compiler, installed with apt-get when missing)
# and protoc-gen-go at exactly the version of google.golang.org/protobuf in go.mod,
# installed into $(FWPROTO_BIN) (repository-root .bin/, gitignored).
#
# Every variable here starts with FWPROTO_ so that including this file cannot clash
# with the including Makefile.

# Paths are derived from this file's location, so they hold from any working directory.
FWPROTO_DIR  := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
FWPROTO_ROOT := $(abspath $(FWPROTO_DIR)/..)
FWPROTO_SRC  := $(FWPROTO_ROOT)/firmware-proto
FWPROTO_OUT  := $(FWPROTO_SRC)/fwpb
FWPROTO_FILES := hearth_fw.proto
FWPROTO_BIN  ?= $(FWPROTO_ROOT)/.bin

FWPROTO_PROTOC ?= protoc
# protoc-gen-go follows go.mod, so a protobuf upgrade regenerates with the matching plugin.
FWPROTO_GEN_GO_VERSION := $(shell cd $(FWPROTO_ROOT) && go list -m -f '{{.Version}}' google.golang.org/protobuf)
FWPROTO_GEN_GO := $(FWPROTO_BIN)/protoc-gen-go-$(FWPROTO_GEN_GO_VERSION)/protoc-gen-go

FWPROTO_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: proto proto-check proto-tools

## proto: regenerate firmware-proto/fwpb from firmware-proto/*.proto
proto: proto-tools
	$(call fwproto_gen,$(FWPROTO_OUT))
	@echo "regenerated $(FWPROTO_OUT) with $$($(FWPROTO_PROTOC) --version) and protoc-gen-go $(FWPROTO_GEN_GO_VERSION)"

## proto-check: regenerate into a temporary directory and fail if fwpb differs
# The "// 	protoc  vX" header line is left out of the comparison: it only records which
# protoc ran, and Debian releases ship different ones. Any change to the generated code
# itself (including the embedded descriptor) is still caught.
proto-check: proto-tools
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call fwproto_gen,$$tmp); \
	stale=0; \
	for f in $$tmp/*.go; do \
		b=$$(basename "$$f"); \
		if [ ! -f "$(FWPROTO_OUT)/$$b" ]; then echo "proto-check: missing firmware-proto/fwpb/$$b"; stale=1; continue; fi; \
		grep -v '^// 	protoc  ' "$(FWPROTO_OUT)/$$b" >"$$tmp/$$b.committed" || true; \
		grep -v '^// 	protoc  ' "$$f" >"$$tmp/$$b.regenerated" || true; \
		diff -u --label "committed fwpb/$$b" --label "regenerated fwpb/$$b" \
			"$$tmp/$$b.committed" "$$tmp/$$b.regenerated" || stale=1; \
	done; \
	for f in $(FWPROTO_OUT)/*.pb.go; do \
		[ -f "$$tmp/$$(basename "$$f")" ] || { echo "proto-check: firmware-proto/fwpb/$$(basename "$$f") has no .proto source"; stale=1; }; \
	done; \
	if [ $$stale != 0 ]; then \
		echo "proto-check: FAILED: firmware-proto/fwpb is stale; run 'make proto' and commit the result"; exit 1; \
	fi; \
	echo "proto-check: firmware-proto/fwpb is up to date"

proto-tools: $(FWPROTO_GEN_GO)
	@command -v $(FWPROTO_PROTOC) >/dev/null 2>&1 || { \
		echo "protoc not found: installing Debian package protobuf-compiler"; \
		$(FWPROTO_SUDO) apt-get update && $(FWPROTO_SUDO) apt-get install -y --no-install-recommends protobuf-compiler; }

$(FWPROTO_GEN_GO):
	@test -n "$(FWPROTO_GEN_GO_VERSION)" || { echo "cannot read the google.golang.org/protobuf version from go.mod"; exit 1; }
	GOBIN=$(dir $@) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(FWPROTO_GEN_GO_VERSION)

# fwproto_gen runs protoc with output into directory $(1).
define fwproto_gen
$(FWPROTO_PROTOC) --plugin=protoc-gen-go=$(FWPROTO_GEN_GO) \
	--proto_path=$(FWPROTO_SRC) \
	--go_out=$(1) --go_opt=paths=source_relative \
	$(addprefix $(FWPROTO_SRC)/,$(FWPROTO_FILES))
endef
