# siamgui: `make run` starts the app, `make test` runs the whole suite headless.
# Both create .venv with plain pip when it is missing (torch 2.14.1 and
# torchvision 0.29.1 come from the machine's local wheel store when present).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: run test bench bench-train soak gpu-check dist dist-check clean-venv help

help:
	@echo "make run    - set up .venv and start the app"
	@echo "make test   - set up .venv (with test tools) and run the whole suite headless"
	@echo "make bench  - run the benchmarks (bench/README.md)"
	@echo "make bench-train - siamgui's training defaults vs a plain baseline on 10 datasets, same budget"
	@echo "              (TRAIN_ARGS=\"--only tiny,glyphs --budget-minutes 2\": a subset, a shorter budget)"
	@echo "make soak   - soak, concurrency and crash tests, about an hour (SOAK_ARGS=\"--scale 0.1\": a tenth)"
	@echo "make gpu-check - on an NVIDIA GPU: compare, LFW View 2, training, DDP; CUDA vs CPU parity (bench/gpu_check.py)"
	@echo "make dist   - build the one-folder desktop app dist/siamgui/ (PyInstaller, siamgui.spec)"
	@echo "make dist-check - run the built app headless: compare + gui --screenshot"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -q -e '.[test]'
	@touch $(VENV)/.installed $@

$(VENV)/.installed-dist: pyproject.toml | $(BIN)/python
	$(PIP) install --disable-pip-version-check -q -e '.[dist]'
	@touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/siamgui

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider

# Figures with baselines measured in the same run, not pass/fail: writes
# bench/results/latest.json and prints a table (bench/README.md). The peer
# (face_recognition, extra 'bench') is timed only where it is installed.
bench: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/run.py

# Training defaults vs the plain tutorial baseline, same data, same wall time, same run;
# scored on unseen classes. Writes bench/results/train_suite.json and prints a table
# (docs/training.md, "Training suite"). About 1.5-2 hours with the default budgets.
bench-train: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/train_suite.py $(TRAIN_ARGS)

# Hours of use in minutes: memory over 10,000 comparisons, 30 min of camera, 20 training
# runs, 1,000 identifications; processes sharing a gallery; 50 SIGKILLs per file operation.
# Writes bench/results/soak.json (bench/README.md, "Soak"); not part of `make test`.
soak: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/soak.py $(SOAK_ARGS)

# On a machine with an NVIDIA GPU: compare, LFW View 2, a short training run and a DDP step on CUDA,
# CUDA vs CPU float32 parity, faces/s, pairs/s, peak GPU memory; exits 1 on a mismatch, 0 with
# "skipped" without a GPU (bench/README.md, "GPU check"). GPU_CHECK_ARGS="--pairs 600": fewer pairs.
gpu-check: $(VENV)/.installed
	$(BIN)/python bench/gpu_check.py $(GPU_CHECK_ARGS)

# dist/siamgui/ (about 4 GB, ignored by git); build/ keeps PyInstaller's cache.
dist: $(VENV)/.installed-dist
	@start=$$(date +%s); \
	$(BIN)/python -m PyInstaller --noconfirm --log-level WARN siamgui.spec && \
	echo "dist: built in $$(( $$(date +%s) - start )) s; $$(du -sh dist/siamgui | cut -f1) in dist/siamgui/"

dist-check: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python .ci/dist_check.py dist/siamgui

clean-venv:
	rm -rf $(VENV)
