# The contract: make install, make test, make bench, make demo, make image (docs/development.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test bench demo image clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

# Two workers, a test module each at a time: most tests wait on a simulator, not on the CPU.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/bench.py

# Every stream through PyAirbyte into demo/out/db_mixpanel_demo.duckdb; CONFIG=path reads a real project.
demo: install
	$(BIN)/python demo/demo.py $(if $(CONFIG),--config $(CONFIG))

# The image (docker, or buildah where no Docker engine runs), then spec, check, discover and a read of every stream in it.
image: install
	image/build.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo/out
