# The two set-up commands of README.md: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test test-deep mutate mutate-compile mutate-decision coverage page-test-deps lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: start the vault with demo data on SQLite at http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/vault init --data-dir $(DATA)
	$(BIN)/vault demo --data-dir $(DATA) --cohort
	$(BIN)/vault serve --data-dir $(DATA) --host 127.0.0.1 --port 8000

## test: the whole test suite (SQLite; set VAULT_DATABASE_URL for PostgreSQL)
test: $(STAMP) page-test-deps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

## test-deep: the reference property tests at 50,000 examples (docs/testing.md; not in CI)
DEEP_EXAMPLES ?= 50000
test-deep: $(STAMP)
	REGIEKLUIS_PROPERTY_EXAMPLES=$(DEEP_EXAMPLES) $(BIN)/python -m pytest -n 2 \
		tests/integration/consent/test_reference_property.py $(PYTEST_ARGS)
	@tail -n 3 test-artifacts/property-counts.txt

## mutate: mutation testing of the access decision with mutmut (docs/testing.md; not in CI)
MUTANTS ?= vault.consent.decision.* vault.consent.enforce.* vault.consent.family.* \
	vault.fhir.repository.base.xǁRepositoryBaseǁ_restriction* \
	vault.fhir.repository.writes.xǁWritesǁ_correct* vault.oauth.protector.* vault.consent.compile.* \
	vault.oauth.sessions.* vault.consent.representation.*
# Empty: every test of [tool.mutmut] in pyproject.toml; else only the tests under these paths.
MUTATE_TESTS ?=
# One worker: the machine has two cores and is shared.
MUTATE_CHILDREN ?= 1
MUTMUT_RUN = REGIEKLUIS_PROPERTY_EXAMPLES=120 $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN)
mutate: $(STAMP)
	REGIEKLUIS_MUTATE_TESTS="$(MUTATE_TESTS)" $(MUTMUT_RUN) $(MUTANTS)
	$(BIN)/mutmut results

# One part at a time, against the tests that guard it (docs/testing.md "Mutation testing").
mutate-compile: $(STAMP)
	REGIEKLUIS_MUTATE_TESTS="tests/unit/consent/test_compile.py" \
		$(MUTMUT_RUN) 'vault.consent.compile.*'
	$(BIN)/mutmut results
mutate-decision: $(STAMP)
	REGIEKLUIS_MUTATE_TESTS="tests/unit/consent tests/integration/consent" \
		$(MUTMUT_RUN) 'vault.consent.decision.*' 'vault.consent.enforce.*' 'vault.consent.family.*'
	$(BIN)/mutmut results

# The consent page's browser tests drive Debian's Chromium (never a browser download) and
# inject axe-core from npm; install both when missing (CI runs as root).
page-test-deps: node_modules/axe-core/axe.min.js
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

node_modules/axe-core/axe.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## coverage: the suite with branch coverage of vault/ and adapters/ (not part of CI's time budget)
coverage: $(STAMP) page-test-deps
	$(BIN)/python -m pytest -n 2 --cov --cov-report=term $(PYTEST_ARGS)

## fuzz: the FHIR API fuzzer, 15,000 random request shapes (>100,000 requests; docs/testing.md)
.PHONY: fuzz
fuzz: $(STAMP)
	FUZZ_RANDOM=1 FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-15000} $(BIN)/python -m pytest -p no:xdist -s \
		tests/integration/fhir/test_fuzz.py $(PYTEST_ARGS)

## lint: ruff (lint + format check), mypy strict and the import contracts (docs/architecture.md)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## bench: every benchmark, one after the other (benchmarks/README.md; about 40 minutes)
# SQLite by default; BENCH_DATABASE_URL=postgresql+psycopg://... runs them on PostgreSQL
# (scaling_plans.py is PostgreSQL only and runs only then). Each prints its figures; none is
# a test. BENCH_INWONERS sizes the runs that load data (default: each script's own).
BENCH_DATABASE_URL ?=
BENCH_DB = $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL),)
# Over HTTP on PostgreSQL its backends go on wrk's core (1), the server keeping core 0 to
# itself (issue 13: pinned where the machine allows; the header says how it ran).
BENCH_HTTP = $(BENCH_DB) $(if $(BENCH_DATABASE_URL),--pin-database 1,)
.PHONY: bench bench-read
bench: $(STAMP)
	$(BIN)/python benchmarks/fhir_read_search.py $(BENCH_HTTP)
	$(BIN)/python benchmarks/consent_read_search.py $(BENCH_HTTP)
	taskset -c 0 $(BIN)/python benchmarks/read_cpu.py
	taskset -c 0 $(BIN)/python benchmarks/read_cpu.py --partner
	taskset -c 0 $(BIN)/python benchmarks/read_cpu.py --partner --without-access-log
	taskset -c 0 $(BIN)/python benchmarks/read_cpu.py --partner --sustained
	taskset -c 0 $(BIN)/python benchmarks/access_log_cpu.py
	$(if $(BENCH_DATABASE_URL),@echo "access_log_growth.py: SQLite only",taskset -c 0 $(BIN)/python benchmarks/access_log_growth.py)
	$(if $(BENCH_DATABASE_URL),@echo "access_log_pages.py: SQLite only",$(BIN)/python benchmarks/access_log_pages.py)
	$(BIN)/python benchmarks/bulk_export.py $(BENCH_DB)
	$(BIN)/python benchmarks/export_profile.py $(BENCH_DB)
	$(BIN)/python benchmarks/bulk_load.py $(BENCH_DB)
	$(BIN)/python benchmarks/partner_plans.py $(BENCH_DB)
	$(BIN)/python benchmarks/report_run.py $(BENCH_DB)
	$(if $(BENCH_DATABASE_URL),$(BIN)/python benchmarks/scaling_plans.py $(BENCH_DB),@echo "scaling_plans.py: PostgreSQL only (set BENCH_DATABASE_URL)")

## bench-read: only the read/search benchmark over HTTP (the one earlier figures came from)
bench-read: $(STAMP)
	$(BIN)/python benchmarks/fhir_read_search.py $(BENCH_HTTP)

## docs: the adapter SDK's API reference, from its docstrings, as HTML in docs/api/
# -W error: a docstring pdoc cannot read fails the build (tests/unit/adapters/test_api_reference.py).
API_MODULES := adapters adapters.base adapters.sdk adapters.samenwerkplan adapters.sink vault.testing
API_OUT ?= docs/api
docs: $(STAMP)
	$(BIN)/python -W error -m pdoc --docformat markdown --no-show-source -o $(API_OUT) $(API_MODULES)

clean:
	rm -rf $(VENV) $(DATA) docs/api .pytest_cache .mypy_cache .ruff_cache node_modules test-artifacts mutants
