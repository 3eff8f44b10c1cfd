# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install ppseg, train/evaluate/predict on the bundled sample
#   make test   - create .venv, install ppseg with test extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ppseg-installed
# torch first, pinned: on our machines the local CPU wheel satisfies it, so no
# step ever pulls the multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[train,test,tensorboard,annotate]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) output .pytest_cache
