# keyledger — see README.md.
GO       ?= go
BIN      := bin/keyledger
BENCH    := bin/keyledger-bench
DATA_DIR ?= ./data
LISTEN   ?= 127.0.0.1:8080

.PHONY: run build test test-unit fuzz bench bench-restart bench-nofsync bench-one bench-all bench-noisy soak vet clean

## run: build and start the service on the embedded default (JetStream under $(DATA_DIR))
run: build
	$(BIN) serve --data-dir $(DATA_DIR) --listen $(LISTEN)

build:
	$(GO) build -o $(BIN) ./cmd/keyledger
	$(GO) build -o $(BENCH) ./cmd/keyledger-bench

## test: the whole suite (unit, end-to-end through the AWS SDK, CLI, crash and architecture tests)
test: vet
	$(GO) test -race -count=1 -parallel 4 -timeout 30m ./...

## test-unit: the packages' own tests, without the end-to-end suite under tests/ (no browser,
## HSM, cluster or server processes): the quick loop while editing
test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/tests$$')

vet:
	$(GO) vet ./...

## fuzz: a short run of every fuzz target (FUZZTIME each)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./gateway/awsjson -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./gateway/sigv4 -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./crypto/ciphertext -run '^$$' -fuzz FuzzParseAndOpen -fuzztime $(FUZZTIME)
	$(GO) test ./projections/policy -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./ledger/merkle -run '^$$' -fuzz FuzzAdversarialProofs -fuzztime $(FUZZTIME)

## bench: drive Encrypt, GenerateDataKey and Sign P-256 (64 connections) and Encrypt on one
## connection at the bare handler (Fiber + encoding/json + the crypto, nothing else) and at a fresh
## embedded server (fsync on every write) in one run; print rate, latency and server CPU per request
## side by side with the ratios; then grow the ledger under Encrypt load to RESTART_EVENTS, stop
## the server under that load (SIGTERM, then kill -9), and print the restart to /readyz and the RSS
## after it
BENCH_FLAGS ?= --concurrency 64 --duration 10s --warmup 2s --size 1024
RESTART_EVENTS ?= 1M
bench: build
	$(BENCH) --compare $(BENCH_FLAGS) --restart-events $(RESTART_EVENTS) --serve-flags "$(SERVE_FLAGS)"

## bench-restart: only the restarts of make bench, at several ledger sizes (RESTART_EVENTS), each
## after a stop under load; RESTART_BUILDS=old=PATH,new=PATH restarts two builds in turn on one ledger
bench-restart: build
	$(BENCH) --compare --compare-ops "" --compare-single=false $(BENCH_FLAGS) --restart-events $(RESTART_EVENTS) \
	  --restart-builds "$(RESTART_BUILDS)" --serve-flags "$(SERVE_FLAGS)"

## bench-nofsync: the same without fsync, to measure what durability costs
bench-nofsync:
	$(MAKE) bench SERVE_FLAGS=--unsafe-no-fsync

## bench-one: one operation (OP_FLAGS, e.g. --op sign-rsa2048) at a fresh embedded server
OP_FLAGS ?= --op encrypt --concurrency 64 --duration 20s --warmup 3s --size 1024
bench-one: build
	@dir=$$(mktemp -d); \
	$(BIN) serve --data-dir $$dir --listen 127.0.0.1:18080 --log-level warn $(SERVE_FLAGS) 2>/dev/null & pid=$$!; \
	$(BENCH) --endpoint http://127.0.0.1:18080 --credentials-from $$dir/principals.json $(OP_FLAGS); status=$$?; \
	kill $$pid; wait $$pid; rm -rf $$dir; exit $$status

## bench-all: every operation the bench drives, 10 s each on a fresh server; fails when a run
## fails (an error or a throttled request)
bench-all: build
	@for op in encrypt encrypt-policy generate-data-key sign-p256 sign-rsa2048 verify-p256 verify-rsa2048; do \
	  $(MAKE) --no-print-directory bench-one OP_FLAGS="--op $$op --concurrency 64 --duration 10s --warmup 2s --size 1024" || exit 1; \
	done

## bench-noisy: one account's Encrypt alone and beside a noisy neighbour (another account on 64 or
## 256 connections, or creating RSA-4096 keys at AWS's 5/s), under the old default (AWS's quotas,
## no fair sharing) and the new (fair sharing)
NOISY_FLAGS ?= --duration 10s --warmup 2s
bench-noisy: build
	$(BENCH) --noisy-neighbour $(NOISY_FLAGS)

## soak: drive Encrypt through a real server to SOAK_SIZES events and measure RSS, restart, report,
## verify, bytes per event and throughput/p99 at each size (long: not part of test)
SOAK_SIZES ?= 1M,5M,20M
SOAK_FLAGS ?= --concurrency 64 --duration 10s --size 1024
soak: build
	$(BENCH) --soak --soak-sizes $(SOAK_SIZES) $(SOAK_FLAGS)

clean:
	rm -rf bin
