# Roomcast — build, test, lint, run, bench.
#
# Every Go target works over all modules of go.work (pkg, services/*,
# cmd/roomcast, tests).

GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
# One pattern per workspace module: "./..." does not cross module roots.
PKGS        := $(shell $(GO) list -m -f '{{.Dir}}/...')
SRC_DIRS    := pkg services cmd tests

.PHONY: all build test test-unit test-js test-chaos test-disruptive lint fmt run bench fuzz tools

all: lint build test

build:
	@mkdir -p bin
	$(GO) build -o bin/gateway ./services/gateway
	$(GO) build -o bin/auth ./services/auth
	$(GO) build -o bin/presence ./services/presence
	$(GO) build -o bin/webhooks ./services/webhooks
	$(GO) build -o bin/history ./services/history
	$(GO) build -o bin/metrics ./services/metrics
	$(GO) build -o bin/roomcast ./cmd/roomcast

# test runs everything against the real Redis, RabbitMQ and PostgreSQL on
# this machine: first every package in parallel (each test isolates itself
# with its own vhost / key prefix); then, alone, the chaos test (CPU-heavy:
# kills gateways under 2,000 msg/s, no race detector) and the tests that
# stop or restart a shared server.
test: test-unit test-js test-chaos test-disruptive

test-unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# test-js: the TypeScript SDK (clients/js) — typecheck, build, vitest unit
# tests — then the chat example's end-to-end tests: Playwright (playwright-core)
# driving Debian's Chromium (/usr/bin/chromium, or CHROMIUM_PATH) against real
# `roomcast run` processes built into bin/.
test-js: build
	cd clients/js && npm ci --no-audit --no-fund && npm run typecheck && npm run build && npm test
	cd examples/chat && npm ci --no-audit --no-fund && ROOMCAST_BIN_DIR=$(CURDIR)/bin npm run test:e2e

test-chaos:
	$(GO) test -tags chaos -p 1 -count=1 -timeout 10m ./tests/chaos

test-disruptive:
	$(GO) test -race -tags disruptive -p 1 -count=1 -timeout 10m -run 'Restart|Disruptive' ./pkg/broker ./tests/disruptive

# lint also vets the CLI for Windows and macOS: developers run it on their
# own machines.
lint:
	@out=$$(gofmt -l $(SRC_DIRS)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags "chaos disruptive" $(PKGS)
	$(STATICCHECK) -tags "chaos disruptive" $(PKGS)
	GOOS=windows $(GO) vet ./cmd/roomcast/...
	GOOS=darwin $(GO) vet ./cmd/roomcast/...

fmt:
	gofmt -w $(SRC_DIRS)

tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

# run starts the platform in one process against local Redis/RabbitMQ
# (override ROOMCAST_REDIS_URL / ROOMCAST_AMQP_URL) and prints the URLs and a
# development API key.
run: build
	./bin/roomcast run

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each (go test -fuzz takes one
# target at a time).
FUZZTIME ?= 60s
fuzz:
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzDecodeServerFrame$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzDecodeCommandMsgpack$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzDecodeServerFrameMsgpack$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzFastJSONMessage$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./protocol -run '^$$' -fuzz '^FuzzFastMessage$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./envelope -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./broker -run '^$$' -fuzz '^FuzzSplitBatch$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./auth/token -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./auth/token -run '^$$' -fuzz '^FuzzMatchPattern$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./auth/token -run '^$$' -fuzz '^FuzzWithin$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./history -run '^$$' -fuzz '^FuzzDecodeCursor$$' -fuzztime $(FUZZTIME)
	cd pkg && $(GO) test ./webhooks -run '^$$' -fuzz '^FuzzParseSignatures$$' -fuzztime $(FUZZTIME)
