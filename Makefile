# synfin — firmware for a TCP appliance. See README.md.

GO        ?= go
BIN       := bin
FIRMWARE  := $(BIN)/firmware
LAB       := $(BIN)/lab
DEB_PKGS  := iproute2 netcat-openbsd iputils-ping nftables tshark openssh-client

.PHONY: all deps build demo test unit fuzz cross vet fmt-check deps-check clean lab-down

all: build

# deps installs the Debian packages the demo and the tests use.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build:
	$(GO) build -o $(FIRMWARE) ./firmware
	$(GO) build -o $(LAB) ./tools/lab

# demo brings up the lab, runs the firmware in it and talks to it from a
# Linux peer with nc: echo, daytime, then `show tcb` while a connection is
# held open. The lab is torn down afterwards, also on failure.
demo: deps build
	@./tools/lab/demo.sh $(FIRMWARE) $(LAB)

lab-down: build
	$(LAB) down

# test runs everything CI runs: formatting, vet, the import rule, the
# cross-builds, the whole test suite (netns tests need root) and a bounded
# fuzzing run.
test: deps fmt-check vet deps-check cross unit fuzz

unit:
	$(GO) test -count=1 -timeout 20m ./...

# fuzz runs each fuzz target, given as PACKAGE:TARGET, for FUZZTIME; go
# test takes one -fuzz target per invocation. Minimizing a new corpus entry
# may take up to 60 s by default, which would eat the whole budget, so it
# is bounded too.
FUZZTIME     ?= 15s
FUZZ_TARGETS := tcpext:FuzzParseSegment tcpext:FuzzEndpoint mgmt:FuzzShell
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; f=$${t#*:}; \
		echo ">> fuzz $$pkg $$f for $(FUZZTIME)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s; \
	done

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The firmware must not link gVisor's own TCP: tcpext replaces it.
deps-check:
	@if $(GO) list -deps ./firmware/... | grep -x 'gvisor.dev/gvisor/pkg/tcpip/transport/tcp'; then \
		echo "firmware links gVisor's transport/tcp"; exit 1; fi
	@echo "ok: firmware does not link gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

cross:
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./firmware
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./firmware
	GOOS=linux GOARCH=arm64 $(GO) vet ./...
	GOOS=linux GOARCH=arm GOARM=7 $(GO) vet ./...
	@echo "ok: cross-builds for arm64 and arm (GOARM=7)"

clean:
	rm -rf $(BIN)
