# bk — build, test, fuzz and benchmark. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/bk
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 10s
BENCHSIZE ?= 1GiB
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help build test race fuzz bench lint demo clean

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build a static bin/bk
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bk

test: ## run every test (servers that are missing are skipped unless BK_REQUIRE_SERVICES=1)
	$(GO) test -count=1 -timeout 30m ./...

race: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 45m ./...

fuzz: ## run each fuzz target for FUZZTIME
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench: build ## end-to-end benchmark against restic and borg (BENCHSIZE=1GiB)
	$(GO) run ./bench -size $(BENCHSIZE) -bk $(BIN)

lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$$(command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck) ./...

demo: build ## snapshot and restore a generated database dump in ./demo
	./scripts/demo.sh $(BIN)

clean: ## remove build output and the demo
	rm -rf bin demo
