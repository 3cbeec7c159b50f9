# Every target CI calls is here; a fresh machine needs only `make run` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_TEST_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: install run test test-pg faults faults-pg faults-long faults-long-pg scale-demo soak lint format typecheck openapi docs bench lock clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "commcentre needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

## Start API + dispatcher on 127.0.0.1:8000 with the embedded SQLite store, a dev keyring
## and demo loopback partners.
run: install
	@mkdir -p -m 700 var
	$(PY) -m commcentre db upgrade
	$(PY) -m commcentre keys generate --dev --if-missing
	$(PY) -m commcentre demo
	@test -s var/admin.key || (umask 077 && $(PY) -m commcentre clients generate-key > var/admin.key)
	@echo ""
	@echo "  admin API key: $$(cat var/admin.key)"
	@echo "  API docs:      http://127.0.0.1:8000/docs"
	@echo "  audit checkpoints: var/audit-checkpoints (verify: $(PY) -m commcentre audit verify --checkpoint var/audit-checkpoints)"
	@echo ""
	COMMCENTRE_BOOTSTRAP_ADMIN_KEY="$$(cat var/admin.key)" COMMCENTRE_AUDIT_CHECKPOINT_PATH=var/audit-checkpoints \
		$(PY) -m commcentre serve --host 127.0.0.1 --port 8000

## The whole suite (SQLite; set COMMCENTRE_TEST_DATABASE_URL for PostgreSQL).
test: install
	$(PY) -m pytest

test-pg: install
	COMMCENTRE_TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest

## Fault runs (worker and API SIGKILL, PostgreSQL crash on a private cluster, partner chaos,
## concurrent workers), short versions; also part of `make test`. docs/reliability.md has the figures.
faults: install
	$(PY) -m pytest tests/faults -s -p no:cacheprovider

faults-pg: install
	COMMCENTRE_TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest tests/faults -s -p no:cacheprovider

## The same fault runs at FAULT_SCALE=long: more kills and crashes, more messages (minutes).
faults-long: install
	FAULT_SCALE=long $(PY) -m pytest tests/faults -s -p no:cacheprovider

faults-long-pg: install
	FAULT_SCALE=long COMMCENTRE_TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest tests/faults -s -p no:cacheprovider

## The scaled-out shape of docker-compose.yml without Docker: two API processes and two
## workers against the local PostgreSQL; prints what each delivered.
scale-demo: install
	COMMCENTRE_TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest tests/faults/test_scaled_shape.py -s -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install
	$(VENV)/bin/mypy

openapi: install
	$(PY) -m commcentre openapi --output openapi/openapi.json

## The generated parts of the docs: the OpenAPI document and the README's configuration table.
docs: openapi
	$(PY) -m commcentre config-table --readme README.md

bench: install
	$(PY) bench/run_all.py

## Soak (not in CI): 30 minutes of mixed traffic against `commcentre serve`, printing its RSS
## and open descriptors; SOAK_ARGS="--minutes 5" for a shorter one. Writes bench/results/soak.json.
soak: install
	$(PY) bench/soak.py $(SOAK_ARGS)

## requirements.lock, which the Docker image installs with --require-hashes: the runtime
## dependencies and the build backend ([build-system] requires), for CPython 3.12 on Linux
## (any architecture), from PyPI alone, with the sha256 of every file. Pins that still fit
## pyproject.toml are kept; LOCK_ARGS=--upgrade moves every pin to the newest release.
## UV_* settings of the caller are dropped, so that no other index reaches the lock.
lock: install
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| env $$(compgen -e | awk '/^UV_/ { print "-u", $$0 }') $(VENV)/bin/uv pip compile --quiet \
			--no-config --default-index https://pypi.org/simple --universal --python-version 3.12 \
			--generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS) \
			pyproject.toml - --output-file requirements.lock
	{ echo "# The Docker image's dependencies: commcentre's runtime requirements and its build backend,"; \
	  echo '# for CPython 3.12 on Linux, pinned with the sha256 of their files on PyPI. The image installs'; \
	  echo '# exactly these (pip install --require-hashes). Do not edit: `make lock` regenerates it.'; \
	  cat requirements.lock; } > requirements.lock.tmp && mv requirements.lock.tmp requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
