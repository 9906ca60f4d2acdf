# sync/transport/proto.mk: generate the Go code for sync/transport/hearth_sync.proto
# into sync/transport/syncpb, with the protoc and protoc-gen-go of
# firmware-proto/proto.mk (included before this file by the top-level Makefile).
#
#	make sync-proto         regenerate sync/transport/syncpb
#	make sync-proto-check   fail if the committed code is stale (part of proto-check)

SYNCPROTO_SRC := $(FWPROTO_ROOT)/sync/transport
SYNCPROTO_OUT := $(SYNCPROTO_SRC)/syncpb

.PHONY: sync-proto sync-proto-check

sync-proto: proto-tools
	$(call syncproto_gen,$(SYNCPROTO_OUT))

# As firmware-proto's check: regenerate into a temporary directory and compare,
# leaving out the line that names the protoc version.
sync-proto-check: proto-tools
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call syncproto_gen,$$tmp); \
	stale=0; \
	for f in $$tmp/*.go; do \
		b=$$(basename "$$f"); \
		if [ ! -f "$(SYNCPROTO_OUT)/$$b" ]; then echo "sync-proto-check: missing sync/transport/syncpb/$$b"; stale=1; continue; fi; \
		grep -v '^// 	protoc  ' "$(SYNCPROTO_OUT)/$$b" >"$$tmp/$$b.committed" || true; \
		grep -v '^// 	protoc  ' "$$f" >"$$tmp/$$b.regenerated" || true; \
		diff -u --label "committed syncpb/$$b" --label "regenerated syncpb/$$b" \
			"$$tmp/$$b.committed" "$$tmp/$$b.regenerated" || stale=1; \
	done; \
	for f in $(SYNCPROTO_OUT)/*.pb.go; do \
		[ -f "$$tmp/$$(basename "$$f")" ] || { echo "sync-proto-check: sync/transport/syncpb/$$(basename "$$f") has no .proto source"; stale=1; }; \
	done; \
	if [ $$stale != 0 ]; then \
		echo "sync-proto-check: FAILED: sync/transport/syncpb is stale; run 'make sync-proto' and commit the result"; exit 1; \
	fi; \
	echo "sync-proto-check: sync/transport/syncpb is up to date"

proto: sync-proto
proto-check: sync-proto-check

define syncproto_gen
$(FWPROTO_PROTOC) --plugin=protoc-gen-go=$(FWPROTO_GEN_GO) \
	--proto_path=$(SYNCPROTO_SRC) \
	--go_out=$(1) --go_opt=paths=source_relative \
	$(SYNCPROTO_SRC)/hearth_sync.proto
endef
