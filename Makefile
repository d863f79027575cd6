# hasupd: `make demo` shows a failover, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed

.PHONY: deps venv test test-fast test-vm demo lint packages bench bench-quick clean lab-down

deps:
	@scripts/deps.sh scripts/apt-packages.txt

$(STAMP): pyproject.toml scripts/apt-packages.txt
	@scripts/deps.sh scripts/apt-packages.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,systemd]'
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	@$(PY) -m ruff check hasupd tests bench
	@$(PYTEST) -q

test-fast: $(STAMP)
	@$(PYTEST) -q -m 'not lab and not slow'

lint: $(STAMP)
	@$(PY) -m ruff check hasupd tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info
