# amibake: see README.md. Every target runs against the bundled EC2
# simulator on loopback; nothing here reaches AWS.
GO        ?= go
PKGS      ?= ./...
N         ?= 30
SEED      ?= 1
PARALLEL  ?= 4
BENCHTIME ?= 1x

# Tests that bake start sshd and bind loopback addresses: run them in a
# network namespace that has only loopback when we can (root + unshare),
# so a mistake cannot reach anything else.
NETNS := $(shell if [ "$$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then echo "unshare --net"; fi)
ifeq ($(NETNS),)
  ISOLATE = sh -c
else
  ISOLATE = unshare --net sh -c 'ip link set lo up && exec "$$0" "$$@"' sh -c
endif

.PHONY: all setup build test test-harsh bench soak lint fuzz demo deps clean dist

all: build

deps:
	@echo "==> deps: go mod download"
	@$(GO) mod download

# What the simulator's machines need (Debian packages; needs root): OpenSSH
# (each instance runs its own sshd), util-linux's nsenter, and mmdebstrap,
# apt-utils and dpkg-dev to build the machines' Debian base and offline apt
# mirror once into /var/cache/amibake (internal/ec2sim/vm/vmsetup; it says
# what it does, and reuses the cache while the recipe is unchanged). Add
# packages to the mirror with MIRROR_PACKAGES="pkg pkg" or
# MIRROR_PACKAGES_FILE=file (one per line). Also the host's Ansible (the
# ansible provisioner's tests) and the third-party EC2 clients the suite runs
# against the simulator, Debian's AWS CLI and boto3; pre-commit (the hooks),
# zip (make dist) and jq (examples/ci).
SYSPKGS := openssh-server openssh-client iproute2 util-linux coreutils curl mmdebstrap apt-utils dpkg-dev ansible awscli python3-boto3 git pre-commit zip jq
MIRROR_PACKAGES ?=
MIRROR_PACKAGES_FILE ?=
# apt waits this long for a lock held by another apt (unattended upgrades
# at first boot) instead of failing at once.
APT := apt-get -o DPkg::Lock::Timeout=600
setup:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: run as root to install:$$missing"; exit 1; fi; \
	  echo "==> setup: installing$$missing (apt-get)"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download
	@if [ "$$(id -u)" != 0 ]; then echo "setup: run as root to build the machines' Debian base"; exit 1; fi
	$(GO) run ./internal/ec2sim/vm/vmsetup $(if $(MIRROR_PACKAGES),-add "$(MIRROR_PACKAGES)") $(if $(MIRROR_PACKAGES_FILE),-packages-file "$(MIRROR_PACKAGES_FILE)")

# Static binaries: no dynamic loader at start-up (about 1 ms of every
# `amibake validate` in a pre-commit hook).
build:
	@echo "==> build: bin/amibake and bin/ec2sim (the first build compiles the AWS SDK: a few minutes on 2 cores)"
	CGO_ENABLED=0 $(GO) build -o bin/amibake ./cmd/amibake
	CGO_ENABLED=0 $(GO) build -o bin/ec2sim ./cmd/ec2sim

# The README's test command. GOPROXY=off: inside the namespace nothing can
# be downloaded anyway, so fail fast if a module is missing. It ends with a
# short fault-injection soak (about 3 minutes) that fails on any hung build,
# leaked resource or unclear error; make soak runs a longer one.
test: setup deps
	$(GO) vet ./...
	$(ISOLATE) 'GOPROXY=off $(GO) test -count=1 -timeout 20m $(PKGS)'
	$(ISOLATE) 'GOPROXY=off CGO_ENABLED=0 $(GO) build -o bin/amibake ./cmd/amibake && GOPROXY=off $(GO) run ./cmd/soak -n 30 -seed 1'

# The suite once more on the simulator's harsh consistency profile: every
# new resource is unknown to every call for 1 to 2 s (EC2SIM_CONSISTENCY
# sets the profile of each simulator a test starts without choosing one).
# It proves the product retries what EC2 asks clients to retry; not part of
# make test, as it takes longer.
test-harsh: setup deps
	$(ISOLATE) 'EC2SIM_CONSISTENCY=harsh GOPROXY=off $(GO) test -count=1 -timeout 30m $(PKGS)'

bench: deps build
	$(ISOLATE) 'GOPROXY=off $(GO) test -run "^$$" -bench . -benchtime $(BENCHTIME) -benchmem -timeout 20m $(PKGS)'

soak: deps build
	$(ISOLATE) 'GOPROXY=off $(GO) run ./cmd/soak -n $(N) -seed $(SEED) -parallel $(PARALLEL)'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Short fuzz runs of every parser; the corpora they grow are kept in testdata/fuzz.
FUZZTIME ?= 20s
fuzz:
	@for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t || exit 1; \
	  done; \
	done

# The main job on the embedded default: the simulator starts, runs
# bin/amibake build on the tutorial template against itself, and stops.
demo: setup build
	$(ISOLATE) './bin/ec2sim demo examples/tutorial/hello_ami.json'

# Release archives of amibake for every platform it runs on, with
# SHA256SUMS. Reproducible: -trimpath, no build id, the archives' files
# dated at the commit (SOURCE_DATE_EPOCH), sorted, owned by 0:0, gzip -n,
# zip -X. Needs GNU tar, gzip and zip (Debian). The Makefile rather than a
# release tool: goreleaser would pull hundreds of modules for a loop of six
# go builds (see README, Releases).
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
COMMIT            ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 315532800)
DIST              ?= dist
PLATFORMS         := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
DIST_LDFLAGS      := -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
dist:
	@rm -rf '$(DIST)' && mkdir -p '$(DIST)/.stage'
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; exe=amibake; [ $$os != windows ] || exe=amibake.exe; \
	  name=amibake_$(VERSION)_$${os}_$${arch}; stage='$(DIST)/.stage/'$$name; mkdir -p "$$stage"; \
	  echo "==> $$name: go build"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(DIST_LDFLAGS)' -o "$$stage/$$exe" ./cmd/amibake; \
	  cp README.md "$$stage/"; chmod 0755 "$$stage/$$exe"; chmod 0644 "$$stage/README.md"; \
	  touch -d @$(SOURCE_DATE_EPOCH) "$$stage/$$exe" "$$stage/README.md"; \
	  if [ $$os = windows ]; then \
	    (cd "$$stage" && TZ=UTC zip -q -X "../$$name.zip" $$exe README.md) && mv "$$stage/../$$name.zip" '$(DIST)/'; \
	  else \
	    tar -C "$$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH) --format=ustar -cf - $$exe README.md | gzip -n -9 > '$(DIST)/'$$name.tar.gz; \
	  fi; \
	done
	@rm -rf '$(DIST)/.stage'
	@cd '$(DIST)' && sha256sum amibake_* > SHA256SUMS && cat SHA256SUMS

clean:
	rm -rf bin
