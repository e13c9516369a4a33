# The commands people and CI type. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
export MCP_REVISION := $(REVISION)

PROXY_LISTEN ?= 127.0.0.1:8080
MOCK_LISTEN ?= 127.0.0.1:8081
SECONDARY_LISTEN ?= 127.0.0.1:8082
export PROXY_LISTEN MOCK_LISTEN SECONDARY_LISTEN

.PHONY: help run up down build release test bench bench-instructions fuzz lint fmt deps check-monitoring clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

run: release ## Run two mock upstreams (:8081, :8082) and the gateway (:8080) in the foreground; Ctrl-C stops all three
	./scripts/run.sh

up: ## Start the compose stack in the background (gateway, mock, loadgen, Prometheus, Alertmanager, Grafana)
	docker compose up -d --build

down: ## Stop the compose stack and delete its volumes
	docker compose down -v

build: ## Debug build of every crate
	$(CARGO) build --workspace --all-targets

release: ## Optimised build of the binaries
	$(CARGO) build --release --bins

deps: ## Install the tools the tests need (promtool, amtool, docker-compose, hadolint, the OpenAI and Anthropic Python SDKs in .venv)
	./scripts/install-deps.sh

test: deps lint ## Everything CI checks: lint, unit, integration, config and end-to-end tests
	./scripts/check-monitoring.sh
	# The end-to-end test runs the workspace's binaries, so they are built first.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: ## Side-by-side benchmark, direct vs through the gateway (~10 min; BASELINE=REV adds that revision's gateway): table on stdout, JSON in bench/results/
	python3 bench/run.py $(if $(BASELINE),--baseline-rev $(BASELINE))

bench-instructions: ## Instructions per request under callgrind, open and keyed gateway (~1 min; BASELINE=REV adds that revision's): repeatable to a fraction of a per cent
	python3 bench/instructions.py $(if $(BASELINE),--baseline-rev $(BASELINE))

# Seconds per fuzz target, and the targets (every file in fuzz/fuzz_targets).
FUZZ_SECS ?= 60
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs)))

fuzz: ## cargo-fuzz the request peek, model replacement, usage reader, chunk summary and SSE splitter, FUZZ_SECS (60) s each; not part of `test`
	./scripts/install-fuzz.sh
	# cargo-fuzz builds with nightly-only flags (sanitizer, coverage instrumentation), which the
	# pinned stable toolchain accepts under RUSTC_BOOTSTRAP. The mock's fixtures seed every
	# corpus; what a run finds is kept in fuzz/corpus, a crash in fuzz/artifacts.
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$target && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --debug-assertions $$target \
	    $(CURDIR)/fuzz/corpus/$$target $(CURDIR)/crates/mock-upstream/fixtures -- \
	    -max_total_time=$(FUZZ_SECS) -dict=$(CURDIR)/fuzz/json.dict || exit 1; \
	done

check-monitoring: ## promtool and amtool: Prometheus config, rules, rule unit tests, Alertmanager config
	./scripts/check-monitoring.sh

.PHONY: kube-generate kube-check

kube-generate: ## Rewrite deploy/kubernetes/base/generated from prometheus/rules, grafana/dashboards and deploy/mcp-server.yaml
	python3 deploy/kubernetes/tools/generate.py

kube-check: ## Render every deploy/kubernetes overlay and check it: schemas, policies, generated files up to date (also part of `test`)
	./scripts/install-k8s-tools.sh
	$(CARGO) test -p mcp-proxy --test stack kubernetes::

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build output
	$(CARGO) clean
