# synfin — firmware for a TCP appliance. See README.md.

GO        ?= go
BIN       := bin
FIRMWARE  := $(BIN)/firmware
LAB       := $(BIN)/lab
DEB_PKGS  := iproute2 netcat-openbsd iputils-ping nftables tshark openssh-client

.PHONY: all deps build demo test unit fuzz cross vet fmt-check deps-check clean lab-down
.PHONY: image-deps firmware-arm64 image-qemu image-rpi qemu test-images test-qemu-user

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
test: deps image-deps fmt-check vet deps-check cross unit fuzz test-qemu-user test-images

unit:
	$(GO) test -count=1 -timeout 20m ./...

# fuzz runs each fuzz target, given as PACKAGE:TARGET:EXECS, for that
# many executions (about 15 s each on the development machine); go test
# takes one -fuzz target per invocation. The budget is a count, not a
# duration: Go 1.26's fuzzing coordinator can report "context deadline
# exceeded" as a failure when a -fuzztime duration runs out while a worker
# is busy (go.dev/issue/75804, fixed in Go 1.27). Minimizing a new corpus
# entry may take up to 60 s by default, so it is bounded too.
FUZZ_TARGETS := tcpext:FuzzParseSegment:300000x tcpext:FuzzEndpoint:60000x mgmt:FuzzShell:250000x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; f=$${rest%%:*}; n=$${rest#*:}; \
		echo ">> fuzz $$pkg $$f, $${n%x} executions"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $$n -fuzzminimizetime 5s; \
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

# Boot images (images/README.md). Build output and the Debian packages they
# are made from go to images/out/, which git ignores; the packages are
# downloaded once and reused.
IMAGES     := images/out
FW_ARM64   := $(IMAGES)/firmware-arm64
MKIMAGE    := $(GO) run ./tools/mkimage
IMAGE_PKGS := qemu-system-arm qemu-user mtools fdisk e2fsprogs dpkg debian-archive-keyring openssh-client

# image-deps installs what building, booting and checking the images needs.
image-deps:
	@missing=""; for p in $(IMAGE_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

firmware-arm64:
	@mkdir -p $(IMAGES)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags='-s -w' -o $(FW_ARM64) ./firmware

# AUTHORIZED_KEYS=FILE puts SSH keys on the images' /perm, e.g.
# make qemu AUTHORIZED_KEYS=$HOME/.ssh/id_ed25519.pub
AUTHORIZED_KEYS ?=
IMAGE_KEYS := $(if $(AUTHORIZED_KEYS),-authorized-keys $(AUTHORIZED_KEYS))

image-qemu: image-deps firmware-arm64
	$(MKIMAGE) qemu -firmware $(FW_ARM64) -out $(IMAGES)/qemu -cache $(IMAGES)/cache -config images/qemu/synfin.yaml $(IMAGE_KEYS)

image-rpi: image-deps firmware-arm64
	$(MKIMAGE) rpi -firmware $(FW_ARM64) -out $(IMAGES)/rpi -cache $(IMAGES)/cache -config images/rpi/synfin.yaml $(IMAGE_KEYS)

# qemu boots the QEMU image on the terminal: serial console on stdio, SSH
# on 127.0.0.1:2222, echo on 127.0.0.1:2207. Leave with "poweroff".
qemu: image-qemu
	images/qemu/run.sh $(IMAGES)/qemu

# test-images builds both images and tests them: the QEMU image boots, is
# reached over SSH and echo, and powers off; the SD image's partitions and
# boot files are checked.
test-images: image-qemu image-rpi
	SYNFIN_QEMU_IMAGE=$(CURDIR)/$(IMAGES)/qemu SYNFIN_RPI_IMAGE=$(CURDIR)/$(IMAGES)/rpi/synfin-rpi.img \
		$(GO) test -count=1 -v -run '^(TestQEMUBoot|TestQEMUBootBadConfig|TestQEMUBootConfigDoesNotStart|TestRPiImage)$$' ./tools/mkimage

# test-qemu-user runs unit tests as arm64 and 32-bit arm binaries under
# qemu-user, where a misaligned 64-bit atomic faults. The packages are those
# whose tests need no root; of the firmware's, the init's unit tests (its
# lab tests stay native).
QEMU_USER_PKGS := ./board ./firmware/config ./mgmt ./nic/impair ./tcpext ./tcpext/cc ./tcpext/stacknet
QEMU_USER_FIRMWARE_RUN := ^Test(ModuleLoadOrder|ModulesDepMalformed|HealthGrace|WatchFeedsOnlyWhileHealthy|ServiceRestartedAfterPanic|InitConfigFallback|BuiltinConfigEveryBoard|FindPermByLabel|CRLFWriter|RequestPowerOnce|SignalsAskForPower|ReapOrphans)$$
test-qemu-user: image-deps
	GOOS=linux GOARCH=arm64 $(GO) test -count=1 -timeout 20m -exec qemu-aarch64 $(QEMU_USER_PKGS)
	GOOS=linux GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64 -run '$(QEMU_USER_FIRMWARE_RUN)' ./firmware
	GOOS=linux GOARCH=arm GOARM=7 $(GO) test -count=1 -timeout 20m -exec qemu-arm $(QEMU_USER_PKGS)
	GOOS=linux GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm -run '$(QEMU_USER_FIRMWARE_RUN)' ./firmware

clean:
	rm -rf $(BIN) $(IMAGES)
