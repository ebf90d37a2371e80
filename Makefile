# mgw — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...
BIN     := bin/mgw
FUZZTIME ?= 30s

.PHONY: run build test race bench fuzz lint deps clean

run: ## run the gateway on its compiled-in default config
	$(GO) run ./cmd/mgw serve

build:
	$(GO) build -o $(BIN) ./cmd/mgw

deps:
	./scripts/deps.sh

test: deps ## vet, then every test under the race detector
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 30m $(PKGS)

race: test

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

fuzz: ## run each fuzz target for FUZZTIME
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
