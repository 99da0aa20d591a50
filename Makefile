# Cairn's entry points (docs/cli.md#make-targets). Every target that runs Cairn first makes sure .venv is
# installed and up to date with pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PACKAGES := workflows store core domain activities api cli worker

.PHONY: run test lint bench demo clean $(VENV)

# `make .venv`: create and install on demand; the stamp re-runs pip when pyproject.toml changes.
$(VENV): $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[embedded,dev]'
	touch $@

run: $(INSTALLED)
	$(BIN)/cairn run

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)

bench: $(INSTALLED)
	$(BIN)/python -m bench

# Needs `make run` up in another terminal.
demo: $(INSTALLED)
	$(BIN)/cairn demo

# Keeps .cairn/ (the embedded stack's state: Temporal history, contacts, mailbox);
# `rm -rf .cairn` starts from scratch.
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
