# gdi — two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# pycsw's environment: catalogue.environment in config/gdi.yml
PYCSW_VENV := .venv-pycsw
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install demo test bench lock clean

# Python packages at the versions the suite was green with (requirements.lock, see `make lock`)
$(BIN)/gdi: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "gdi needs Python >= 3.12, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $(BIN)/gdi

# pycsw (the CSW at /csw) in an environment of its own: it pins an older OWSLib than gdi (requirements-pycsw.lock)
$(PYCSW_VENV)/bin/pycsw-admin.py: requirements-pycsw.lock
	$(PYTHON) -m venv $(PYCSW_VENV)
	$(PYCSW_VENV)/bin/pip install -q --upgrade pip
	$(PYCSW_VENV)/bin/pip install -q -r requirements-pycsw.lock
	@touch $@

viewer/vendor/.complete: viewer/assets.yml scripts/vendor_assets.py
	@scripts/system_packages.sh assets
	$(BIN)/python scripts/vendor_assets.py

install: $(BIN)/gdi viewer/vendor/.complete $(PYCSW_VENV)/bin/pycsw-admin.py

demo: install
	$(BIN)/gdi demo --host $(HOST) --port $(PORT)

# the Debian packages the suite drives (chromium, gdal-bin, python3-qgis, postgresql + postgis) come first
test: install
	@scripts/system_packages.sh test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# gdi vs ogr2ogr and tipg, and the soak (tipg is installed into /tmp/gdi-bench/venv-tipg)
bench: install
	@scripts/system_packages.sh bench
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

# re-resolve requirements.lock after a change of pyproject.toml's dependencies (pins kept where they fit)
lock:
	$(PYTHON) -m venv /tmp/gdi-piptools && /tmp/gdi-piptools/bin/pip install -q pip-tools
	/tmp/gdi-piptools/bin/pip-compile -q --extra test --strip-extras --no-emit-index-url --no-emit-trusted-host \
	  --no-emit-find-links -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) $(PYCSW_VENV) var viewer/vendor
