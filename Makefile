# The commands people and CI type. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
export MCP_REVISION := $(REVISION)

PROXY_LISTEN ?= 127.0.0.1:8080
MOCK_LISTEN ?= 127.0.0.1:8081
SECONDARY_LISTEN ?= 127.0.0.1:8082
export PROXY_LISTEN MOCK_LISTEN SECONDARY_LISTEN

.PHONY: help run up down build release test bench lint fmt deps check-monitoring clean

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

bench: ## Side-by-side benchmark, direct vs through the gateway (~7 min): table on stdout, JSON in bench/results/
	python3 bench/run.py

check-monitoring: ## promtool and amtool: Prometheus config, rules, rule unit tests, Alertmanager config
	./scripts/check-monitoring.sh

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build output
	$(CARGO) clean
