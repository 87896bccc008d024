# Kommons — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROVIDERS ?= 3
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with Kommons and its dev tools.

BED_TOOLS := kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd helm

.PHONY: tools
tools: ## Build (or reuse cached) the bed's binaries (Kubernetes, kubectl, kwok, etcd, helm) from pinned Go modules.
	bash hack/testbed/build-tools.sh $(BED_TOOLS)

.PHONY: helm
helm: ## Build (or reuse cached) helm from its pinned Go module (also part of `make tools`).
	bash hack/testbed/build-tools.sh helm

.PHONY: deps
deps: venv tools ## Install everything the bed needs: Python deps, Go binaries, anvil, Prometheus, solc.
	bash hack/testbed/install-anvil.sh
	bash contracts/install-deps.sh
	bash hack/testbed/install-prometheus.sh

.PHONY: testbed-up
testbed-up: deps ## Start hub + $(PROVIDERS) provider clusters + anvil on loopback (state in .testbed/).
	$(VENV)/bin/kommons-testbed up --providers $(PROVIDERS)

.PHONY: testbed-down
testbed-down: venv ## Stop exactly the bed's processes and remove .testbed/.
	$(VENV)/bin/kommons-testbed down

.PHONY: testbed-status
testbed-status: venv ## Show the bed's clusters, ports and processes.
	$(VENV)/bin/kommons-testbed status

.PHONY: run
run: deps ## Start hub + $(PROVIDERS) providers + anvil + hub operator + agents, apply examples/, show them Running.
	$(VENV)/bin/kommons-testbed run --providers $(PROVIDERS)

.PHONY: stop
stop: venv ## Stop everything `make run` started (bed, operator, agents) and remove .testbed/.
	$(VENV)/bin/kommons-testbed down

.PHONY: lint
lint: venv ## ruff check + format check.
	$(VENV)/bin/ruff check operator hack/testbed tests bench
	$(VENV)/bin/ruff format --check operator hack/testbed tests bench
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: venv ## Apply ruff fixes and formatting.
	$(VENV)/bin/ruff check --fix operator hack/testbed tests bench
	$(VENV)/bin/ruff format operator hack/testbed tests bench

.PHONY: typecheck
typecheck: venv ## mypy --strict on the packages.
	$(VENV)/bin/mypy

.PHONY: unit
unit: venv ## Unit tests (pure logic, no bed).
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

.PHONY: integration
integration: deps ## Integration tests against the real bed (brought up if not running).
	$(VENV)/bin/pytest tests/integration $(PYTEST_ARGS)

.PHONY: generate-crds
generate-crds: venv ## Write crds/, the field reference in docs/api/ and the chart's CRDs and trust boundary.
	$(PY) -m kommons.crdgen --out crds --docs docs/api --chart helm/kommons

.PHONY: verify-crds
verify-crds: venv ## Fail (with a diff) when crds/, docs/api/ or the chart's generated files are stale.
	$(PY) -m kommons.crdgen --out crds --docs docs/api --chart helm/kommons --check

.PHONY: bench
bench: deps ## Benchmarks (docs/performance.md): scheduler, hub vs kube-scheduler, 1,000 hollow providers, failover, HA takeover, settlement gas and loop; ~50 min.
	$(PY) bench/bench_scheduler.py
	$(PY) bench/bench_hub.py
	$(PY) bench/bench_scale.py
	$(PY) bench/bench_failover.py
	$(PY) bench/bench_takeover.py
	$(PY) bench/bench_settlement_gas.py
	$(PY) bench/bench_settlement_loop.py

.PHONY: bench-quick
bench-quick: deps ## The benchmarks at small sizes (smoke run, ~13 min); figures only, no assertions.
	$(PY) bench/bench_scheduler.py --quick
	$(PY) bench/bench_hub.py --quick
	$(PY) bench/bench_scale.py --quick
	$(PY) bench/bench_failover.py --quick
	$(PY) bench/bench_takeover.py --quick
	$(PY) bench/bench_settlement_gas.py --quick
	$(PY) bench/bench_settlement_loop.py --quick

.PHONY: contracts-deps
contracts-deps: ## Install the pinned solc + OpenZeppelin npm packages (cached outside the repo).
	bash contracts/install-deps.sh

CONTRACT_ARTIFACTS := operator/kommons/settlement/artifacts/Settlement.json \
	operator/kommons/settlement/artifacts/TestToken.json bench/artifacts/NaiveSettlement.json

.PHONY: contracts
contracts: contracts-deps ## Compile contracts/ and write the committed ABI + bytecode artifacts.
	node contracts/build.mjs

.PHONY: verify-contracts
verify-contracts: contracts-deps ## Fail (naming the file) when a committed contract artifact does not rebuild byte-identical.
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	node contracts/build.mjs --out "$$tmp" >/dev/null; status=0; \
	for f in $(CONTRACT_ARTIFACTS); do \
	  if ! cmp -s "$$f" "$$tmp/$$f"; then echo "verify-contracts: $$f differs from a fresh build (run make contracts)" >&2; status=1; fi; \
	done; \
	[ $$status -eq 0 ] && echo "verify-contracts: $(words $(CONTRACT_ARTIFACTS)) artifacts rebuild byte-identical"; exit $$status

.PHONY: test
test: deps lint typecheck verify-crds verify-contracts ## Everything CI runs: lint, typecheck, verify-crds, verify-contracts, then the whole suite.
	$(VENV)/bin/pytest tests --durations=30 $(PYTEST_ARGS)
