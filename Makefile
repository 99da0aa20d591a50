# Cairn's entry points (docs/cli.md#make-targets). Every target that runs Cairn first makes sure .venv is
# installed and up to date with pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PACKAGES := workflows store core domain activities api cli worker

UI_STAMP := ui/dist/.built
UI_SOURCES := $(shell find ui/src ui/index.html ui/vite.config.ts ui/tsconfig.json -type f 2>/dev/null)
# The Studio needs Node.js >= 20 (docs/studio.md); without it everything else still runs.
NODE_OK := $(shell node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' 2>/dev/null && echo yes)

.PHONY: run test lint bench demo clean ui ui-if-node ui-client ui-client-check ui-test $(VENV)

# `make .venv`: create and install on demand; the stamp re-runs pip when pyproject.toml changes.
$(VENV): $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[embedded,dev]'
	touch $@

run: $(INSTALLED) ui-if-node
	$(BIN)/cairn run

test: $(INSTALLED) ui-if-node
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)
	$(MAKE) ui-client-check
	$(if $(NODE_OK),cd ui && npx vitest run,@echo "make: Node.js >= 20 not found: skipping the Studio's unit tests (docs/studio.md)")
	$(BIN)/pytest -q -p no:cacheprovider

# The Studio's bundle (ui/dist), rebuilt when its sources or lockfile change.
ui: $(UI_STAMP)

ui/node_modules/.installed: ui/package-lock.json ui/package.json
	cd ui && npm ci --no-audit --no-fund
	touch $@

$(UI_STAMP): ui/node_modules/.installed $(UI_SOURCES)
	cd ui && npx tsc -p tsconfig.json && npx vite build
	touch $@

ui-if-node:
ifeq ($(NODE_OK),yes)
	@$(MAKE) --no-print-directory ui
else
	@echo "make: Node.js >= 20 not found: the Studio (ui/) is not built; the API runs without it (docs/studio.md)" >&2
endif

# The typed client (ui/src/api/schema.d.ts) and the document schema, from the app's OpenAPI.
UI_SCHEMA_DUMP = $(BIN)/python -c "import json, sys; from api.app import create_app; \
	from workflows.document import automation_json_schema; \
	json.dump(create_app().openapi(), open(sys.argv[1], 'w'), indent=1, sort_keys=True); \
	json.dump(automation_json_schema(), open(sys.argv[2], 'w'), indent=1, sort_keys=True)"

ui-client: $(INSTALLED) ui/node_modules/.installed
	mkdir -p build
	$(UI_SCHEMA_DUMP) build/openapi.json ui/src/api/document.schema.json
	cd ui && npx openapi-typescript ../build/openapi.json -o src/api/schema.d.ts

# Fails when the checked-in client or document schema differ from what the API says.
ui-client-check: $(INSTALLED)
	mkdir -p build
	$(UI_SCHEMA_DUMP) build/openapi.json build/document.schema.json
	diff -q ui/src/api/document.schema.json build/document.schema.json \
		|| { echo "ui/src/api/document.schema.json is stale: run make ui-client" >&2; exit 1; }
ifeq ($(NODE_OK),yes)
	@$(MAKE) --no-print-directory ui/node_modules/.installed
	cd ui && npx openapi-typescript ../build/openapi.json -o ../build/schema.d.ts
	diff -q ui/src/api/schema.d.ts build/schema.d.ts \
		|| { echo "ui/src/api/schema.d.ts is stale: run make ui-client" >&2; exit 1; }
else
	@echo "make: Node.js >= 20 not found: the typed client is not checked (docs/studio.md)" >&2
endif

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)
	$(if $(NODE_OK),cd ui && npx tsc -p tsconfig.json,)

bench: $(INSTALLED)
	$(BIN)/python -m bench

# Needs `make run` up in another terminal.
demo: $(INSTALLED)
	$(BIN)/cairn demo

# Keeps .cairn/ (the embedded stack's state: Temporal history, contacts, mailbox);
# `rm -rf .cairn` starts from scratch.
clean:
	rm -rf $(VENV) build *.egg-info ui/node_modules ui/dist .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
