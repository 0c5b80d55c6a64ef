# `make test` and `make demo` do all set-up: they create .venv with a Python >= 3.12 (3.12, the
# version espnet 202611 is tested with, preferred) found on
# PATH or under pyenv, and install the package with its test extra.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo venv bench clean

define find_python
for c in python3.12 python3.13 python3.14 python3; do \
  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then command -v $$c; exit 0; fi; \
done; \
root="$${PYENV_ROOT:-$$( (pyenv root) 2>/dev/null || echo $$HOME/.pyenv)}"; \
for v in $$(ls "$$root/versions" 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -V); do \
  p="$$root/versions/$$v/bin/python"; [ -x "$$p" ] && { echo "$$p"; exit 0; }; \
done; \
exit 1
endef

$(STAMP): setup.py
	@PYTHON=$$( $(find_python) ) || { echo "error: Python >= 3.12 is required (espnet 202611 needs it) and none was found on PATH or under pyenv. Install one, e.g. 'apt-get install python3.12 python3.12-venv' or 'pyenv install 3.12', then re-run make." >&2; exit 1; }; \
	echo "using $$PYTHON ($$($$PYTHON --version))"; \
	[ -x $(PY) ] || $$PYTHON -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip  # no cache: the CUDA torch wheels are GBs, and a CI machine ran out of disk
	$(PY) -m pip install -q --no-cache-dir -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Two test files at a time (the recipe runs leave a core idle while they import); a file's tests
# share one worker, so its module fixtures (a Slurm cluster, a recipe run) are made once.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15 tests

# Everything but the end-to-end recipe runs (marked slow), for a quick check while editing.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

# The main job: the embedded synth_shift benchmark with its default settings (about an hour on 2 cores).
demo: $(STAMP)
	cd egs2/synth_shift/asr1 && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh --python python

bench: $(STAMP)
	$(PY) benchmarks/adapter_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
