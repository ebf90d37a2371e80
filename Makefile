# mgw — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
PKGS    ?= ./...
BIN     := bin/mgw
FUZZTIME ?= 30s
# LEAN is how the gateway binary is built and run (deploy/Dockerfile does the same):
#   CGO_ENABLED=0  a static binary; nothing in mgw needs cgo (net and os/user fall back
#                  to pure Go), and it runs on an image without libc;
#   -trimpath      no build-machine paths in the binary;
#   (no grpc)      etcd is reached through its JSON gateway (fleet/etcdsource/client.go),
#                  not its gRPC client: grpc, protobuf and zap are not linked, which took
#                  the binary from 24.5 MB to 17.9 MB and an idle `mgw serve` from 14.9 to
#                  11.1 MiB RSS. Each process maps its binary's pages once, so a box of
#                  several processes pays that several times. (Until then the grpcnotrace
#                  tag kept grpc from linking html/template, which made the linker keep
#                  every exported method: 37.7 MB -> 24.5 MB.)
LEAN    := CGO_ENABLED=0 GOFLAGS=-trimpath

.PHONY: run build test race bench bench-http bench-latency loadtest-100k fuzz lint deps clean

run: ## run the gateway on its compiled-in default config
	$(LEAN) $(GO) run ./cmd/mgw serve

build: ## the lean, static release binary (LEAN above) in bin/mgw
	$(LEAN) $(GO) build -o $(BIN) ./cmd/mgw

deps:
	./scripts/deps.sh

test: deps ## vet, then every test under the race detector
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 30m $(PKGS)

race: test

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-http: ## HTTP and MMTP throughput per proxy core: mgw beside nginx (env: DURATION, ONLY, ...)
	./scripts/bench-http.sh

bench-latency: ## latency added by mgw's hop at a fixed rate (env: DURATION, RATE, ENGINES)
	./scripts/bench-latency.sh

LT100K ?= loadtest-100k
loadtest-100k: build ## 100k connections + 1000 req/s on both engines, over as many gateway processes as the open-file limit needs; writes $(LT100K).json and .html
	$(BIN) loadtest compare -conns 100000 -hello -rate 1000 -duration 20s -json $(LT100K).json -html $(LT100K).html

fuzz: ## run each fuzz target for FUZZTIME
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
	@# layers (design.md): nothing below the gateway imports it (config/layers_test.go too)
	@! $(GO) list -deps ./codec/... ./netpoll/... ./filters/... ./config/... | grep '^github.com/mgw-project/mgw/gateway' || { echo 'a package under codec/, netpoll/, filters/ or config/ imports gateway/'; exit 1; }
	@# the module builds elsewhere, with the rwloop engine (Linux-only parts carry build tags)
	GOOS=darwin $(GO) build ./...

clean:
	rm -rf bin
