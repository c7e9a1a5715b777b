# softpl: `make test` is the whole test suite (unit tests + end-to-end smoke of the recipe stages).
PY := .venv/bin/python

.PHONY: env test unit smoke clean

env:
	utils/setup_env.sh

test: env
	$(PY) -m pytest tests -q -rs

unit: env
	$(PY) -m pytest tests -q -m "not smoke"

smoke: env
	$(PY) -m pytest tests -q -m smoke

clean:
	rm -rf egs/*/data egs/*/dump egs/*/exp egs/*/corpus .pytest_cache
