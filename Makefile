# The two commands a new user needs (see README):
#   make demo   - the gateway in front of the ModelServer stand-in, serving the example models
#   make test   - every test (CI runs exactly this through .ci/run)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
GRPC_PORT ?= 8500

.PHONY: demo test venv models bench bench-smoke protos lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $@

venv: $(VENV)/.installed

models: venv
	$(PY) examples/build_models.py examples/models

demo: models
	PY=$(PY) PORT=$(PORT) GRPC_PORT=$(GRPC_PORT) bash examples/demo.sh

test: venv
	$(PY) -m pytest -p no:cacheprovider -q

bench: venv
	$(PY) -m bench

bench-smoke: venv
	$(PY) -m bench --smoke

protos: venv
	$(PY) protos/regenerate.py

lint: venv
	$(PY) -m ruff check gateway tests devserver
	$(PY) -m mypy gateway

clean:
	rm -rf $(VENV) examples/models build *.egg-info
