# Shortcuts for development; CI runs .ci/run.
PY := .venv/bin/python

.PHONY: lint docs docs-results docs-serve test

lint:  ## what .ci/run checks before the tests
	.venv/bin/ruff check src tests benchmarks docs
	.venv/bin/ruff format --check src tests benchmarks docs
	.venv/bin/mypy

docs:  ## the generated pages (methods, attacks, support matrix, results tables), then the site
	$(PY) docs/gen.py
	.venv/bin/mkdocs build --strict

docs-results:  ## measure again (about half an hour on 2 cores), then render
	$(PY) benchmarks/docs_results.py
	$(PY) docs/gen.py

docs-serve:
	.venv/bin/mkdocs serve

test:
	$(PY) -m pytest
