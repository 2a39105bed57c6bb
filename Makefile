# gdi — two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install demo test bench clean

$(BIN)/gdi: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "gdi needs Python >= 3.12, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(BIN)/gdi

viewer/vendor/.complete: viewer/assets.yml scripts/vendor_assets.py
	$(BIN)/python scripts/vendor_assets.py

install: $(BIN)/gdi viewer/vendor/.complete

demo: install
	$(BIN)/gdi demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# gdi vs ogr2ogr and tipg (needs Debian's wrk and gdal-bin; tipg is installed into /tmp/gdi-bench/venv-tipg)
bench: install
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install -y wrk"; exit 2; }
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var viewer/vendor
