# convoy: build, test, lint, demo. Tools are installed at pinned versions
# into bin/ by the targets that need them.

GO            ?= go
BIN           := $(CURDIR)/bin
STATICCHECK   := $(BIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
FUZZTIME      ?= 30s
BENCH_PKGS    := ./segment ./manifest ./merge

PREFIX        ?= /usr/local

.PHONY: all build man install deps test test-short lint fmt-check vet staticcheck demo fuzz soak bench-go bench clean

all: build

# A tag names the version; between tags it is the version in the making
# (DefaultVersion in config.go) with the commit: 0.1.0-dev+0a3966d1f2c4.
BASE_VERSION  := $(shell sed -n 's/^const DefaultVersion = "\(.*\)"/\1/p' config.go)
VERSION       ?= $(shell git describe --tags --dirty 2>/dev/null || echo "$(BASE_VERSION)+$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)")

build:
	$(GO) build -ldflags "-X github.com/convoy-dl/convoy.Version=$(VERSION)" -o $(BIN)/convoy ./cmd/convoy

# What the tests need beyond Go: nginx, for the integration tests on
# loopback (installed from Debian as root when missing; quick when there).
deps:
	./scripts/deps.sh

# The default test run: formatting, vet, staticcheck, nginx if missing, then
# every test with the race detector (fuzz seed corpora run as ordinary
# tests), then each Go micro-benchmark once, so a broken one fails here
# rather than in bench-go.
test: lint deps
	$(GO) test -race -count=1 -timeout 8m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS)

# Unit and integration tests without the process tests that build the binary.
test-short: deps
	$(GO) test -race -count=1 -short ./...

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

# The manual page, from the same definitions as --help.
man: build
	$(BIN)/convoy man > $(BIN)/convoy.1

# Installs the binary, its manual page and the bash completion under PREFIX
# (DESTDIR for packaging).
install: man
	install -D -m 0755 $(BIN)/convoy $(DESTDIR)$(PREFIX)/bin/convoy
	install -D -m 0644 $(BIN)/convoy.1 $(DESTDIR)$(PREFIX)/share/man/man1/convoy.1
	$(BIN)/convoy completion bash > $(BIN)/convoy.bash
	install -D -m 0644 $(BIN)/convoy.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/convoy

# Builds convoy and a local test server, downloads a 256 MiB file from it over
# 8 connections, and checks the SHA-256.
demo: build
	$(GO) build -o $(BIN)/testserver ./internal/cmd/testserver
	./scripts/demo.sh $(BIN)/convoy $(BIN)/testserver

# Runs every fuzz target for FUZZTIME each.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# Go micro-benchmarks of the hot paths: body-to-WriteAt copy, planner,
# snapshot, manifest save, part-file writes.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS)

# Kills a download 50 times at random moments while the server resets
# connections, then checks the file byte for byte; then cuts the power 1000
# times on the lossy file system (a few minutes each). The seed is printed;
# SOAK_SEED=N replays a run.
soak:
	SOAK_SEED=$(SOAK_SEED) $(GO) test -tags soak -run '^(TestSoak|TestPowerCutSoak)$$' -count=1 -timeout 30m -v ./cmd/convoy

# Side-by-side runs against curl, aria2c, axel and lftp on loopback (nginx, a
# fault proxy, a network namespace shaped with tc: root); about 70 minutes and
# 66 GiB of free disk (S14's 64 GiB file), writes bench/RESULTS.md.
bench:
	./bench/bench.sh all 5

clean:
	rm -rf $(BIN)
