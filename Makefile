# TaskMed Conversations: `make run` serves the app with demo data, `make test` runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# A Python is good enough when it is 3.12 or newer (Django 6).
PY_OK := import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)

.PHONY: run test bench lint install clean

install: $(STAMP)

$(STAMP): requirements.txt
	@if [ -x "$(PY)" ] && ! "$(PY)" -c '$(PY_OK)' 2>/dev/null; then \
	  echo "Recreating $(VENV): it was made with a Python older than 3.12."; rm -rf "$(VENV)"; fi
	@if [ ! -x "$(PY)" ]; then \
	  found=""; for candidate in python3.13 python3.12 python3; do \
	    if command -v "$$candidate" >/dev/null 2>&1 && "$$candidate" -c '$(PY_OK)' >/dev/null 2>&1; then found="$$candidate"; break; fi; \
	  done; \
	  if [ -z "$$found" ]; then \
	    echo "TaskMed needs Python 3.12 or newer (Django 6), but none of python3.13, python3.12 or python3 is." >&2; \
	    echo "Install one (e.g. 'apt-get install python3.13 python3.13-venv', or 'pyenv install 3.13'), then run make again." >&2; \
	    exit 1; fi; \
	  echo "Creating $(VENV) with $$found ($$($$found --version))"; \
	  "$$found" -m venv "$(VENV)" || { echo "Could not create $(VENV): install the venv module for $$found (e.g. python3.13-venv)." >&2; exit 1; }; \
	fi
	"$(PY)" -m pip install --quiet --disable-pip-version-check --upgrade pip
	"$(PY)" -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch "$(STAMP)"

run: install
	"$(PY)" manage.py migrate --noinput
	"$(PY)" manage.py seed_demo
	@echo "TaskMed Conversations: http://$(HOST):$(PORT)/ (the task worker runs beside it; Ctrl+C stops both)"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM; \
	"$(PY)" manage.py db_worker --no-reload --queue-name '*' & \
	"$(PY)" -m taskmed.serve --host $(HOST) --port $(PORT) & \
	wait -n

test: install
	"$(PY)" -m pytest $(PYTEST_ARGS)

# The project's benchmarks (bench/run.py): one JSON line each, appended to docs/benchmarks.md. They use
# BENCH_DATABASE_URL / BENCH_REDIS_URL (default: the local taskmed_bench database and Redis db 13).
BENCH_ARGS ?=
bench: install
	"$(PY)" bench/run.py $(BENCH_ARGS)

lint: install
	"$(VENV)/bin/ruff" check .
	"$(VENV)/bin/ruff" format --check .

clean:
	rm -rf "$(VENV)" .pytest_cache .ruff_cache
