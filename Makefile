# softpl: `make test` is the whole test suite (unit tests + end-to-end smoke of the recipe stages);
# `make lint` runs ruff and shellcheck. Both set up what they need first (utils/setup_env.sh): missing system
# tools are installed with apt-get where no password is needed (root, passwordless sudo), else they stop with the
# apt-get command to run; INSTALL_SYSTEM_PACKAGES=true installs through sudo (asking), false never installs.
PY := .venv/bin/python
INSTALL_SYSTEM_PACKAGES ?= auto
SETUP_ENV := utils/setup_env.sh --install_system_packages $(INSTALL_SYSTEM_PACKAGES)

.PHONY: env lint-env lint test unit integration smoke clean

# The tests render the synthetic corpus and score with sclite: every recipe's local/system_tools, and .venv.
env:
	$(SETUP_ENV) --recipes all

lint-env:
	$(SETUP_ENV) --recipes "" --tools shellcheck

# ruff (ruff.toml) on the Python; shellcheck (.shellcheckrc) on every tracked shell script.
lint: lint-env
	$(PY) -m ruff check .
	git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck -x

# Two processes (pytest-xdist): the recipe smoke test (collected first, tests/conftest.py) on one, the rest on the other.
# `make test` runs the three tiers: unit (no subprocess training), integration and smoke (pytest.ini's markers), and
# lists the 15 slowest tests (the suite's time budget is 20 min on 2 cores: this says where it goes).
test: env
	$(PY) -m pytest tests -q -rs -n 2 --durations 15

unit: env
	$(PY) -m pytest tests -q -n 2 -m "not smoke and not integration"

integration: env
	$(PY) -m pytest tests -q -n 2 -m integration

smoke: env
	$(PY) -m pytest tests -q -m smoke

clean:
	rm -rf egs/*/data egs/*/dump egs/*/exp egs/*/corpus .pytest_cache
