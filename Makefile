# amibake: see README.md. Every target runs against the bundled EC2
# simulator on loopback; nothing here reaches AWS.
GO        ?= go
PKGS      ?= ./...
N         ?= 30
SEED      ?= 1
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

.PHONY: all setup build test bench soak lint fuzz demo deps clean

all: build

deps:
	$(GO) mod download

# What the simulator's machines need (Debian packages; needs root): OpenSSH
# (each instance runs its own sshd), util-linux's nsenter, and mmdebstrap,
# apt-utils and dpkg-dev to build the machines' Debian base and offline apt
# mirror once into /var/cache/amibake (internal/ec2sim/vm/vmsetup; it says
# what it does, and reuses the cache while the recipe is unchanged). Add
# packages to the mirror with MIRROR_PACKAGES="pkg pkg" or
# MIRROR_PACKAGES_FILE=file (one per line). Also the host's Ansible (the
# ansible provisioner's tests) and the third-party EC2 clients the suite runs
# against the simulator, Debian's AWS CLI and boto3.
SYSPKGS := openssh-server openssh-client iproute2 util-linux coreutils curl mmdebstrap apt-utils dpkg-dev ansible awscli python3-boto3
MIRROR_PACKAGES ?=
MIRROR_PACKAGES_FILE ?=
setup:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: run as root to install:$$missing"; exit 1; fi; \
	  echo "setup: installing$$missing"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download
	@if [ "$$(id -u)" != 0 ]; then echo "setup: run as root to build the machines' Debian base"; exit 1; fi
	$(GO) run ./internal/ec2sim/vm/vmsetup $(if $(MIRROR_PACKAGES),-add "$(MIRROR_PACKAGES)") $(if $(MIRROR_PACKAGES_FILE),-packages-file "$(MIRROR_PACKAGES_FILE)")

# Static binaries: no dynamic loader at start-up (about 1 ms of every
# `amibake validate` in a pre-commit hook).
build:
	CGO_ENABLED=0 $(GO) build -o bin/amibake ./cmd/amibake
	CGO_ENABLED=0 $(GO) build -o bin/ec2sim ./cmd/ec2sim

# The README's test command. GOPROXY=off: inside the namespace nothing can
# be downloaded anyway, so fail fast if a module is missing. It ends with a
# short fault-injection soak (about 3 minutes) that fails on any hung build,
# leaked resource or unclear error; make soak runs a longer one.
test: setup deps
	$(GO) vet ./...
	$(ISOLATE) 'GOPROXY=off $(GO) test -count=1 -timeout 12m $(PKGS)'
	$(ISOLATE) 'GOPROXY=off CGO_ENABLED=0 $(GO) build -o bin/amibake ./cmd/amibake && GOPROXY=off $(GO) run ./cmd/soak -n 30 -seed 1'

bench: deps build
	$(ISOLATE) 'GOPROXY=off $(GO) test -run "^$$" -bench . -benchtime $(BENCHTIME) -benchmem -timeout 20m $(PKGS)'

soak: deps build
	$(ISOLATE) 'GOPROXY=off $(GO) run ./cmd/soak -n $(N) -seed $(SEED)'

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

# The main job on the embedded default: start the simulator and bake the
# tutorial template against it.
demo: setup build
	$(ISOLATE) './bin/amibake demo examples/tutorial/hello_ami.json'

clean:
	rm -rf bin
