# Two commands: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint typecheck check clean screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# Local defaults for development: debug on, fresh random secrets, and the app pointed at the
# sandbox portal and Unitalk that `make run` starts beside it. The settings read it only because
# DEV_ENV names it: production sets real environment variables and never reads a stray .env.
DEV_ENV := DJANGO_ENV_FILE=$(CURDIR)/.env

.env:
	@$(PYTHON) bin/write-dev-env .env
	@echo "wrote .env with local development defaults (sandbox portal and Unitalk)"

run: $(STAMP_RUN) .env
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	mkdir -p var
	$(DEV_ENV) $(PY) bin/procfile-dev > var/Procfile.dev
	@# honcho answers Ctrl-C with exit status 130 once every process has stopped: a clean stop.
	$(DEV_ENV) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho -f var/Procfile.dev -d . start \
		|| { rc=$$?; [ $$rc -eq 130 ] && echo "stopped." || exit $$rc; }

test: $(STAMP_TEST)
	@# Page tests drive Debian's Chromium (never a downloaded browser); compilemessages needs msgfmt.
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/msgfmt ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium gettext; \
	    else echo "make test needs Debian's chromium and gettext: apt-get install chromium gettext"; exit 1; fi; \
	fi
	$(VENV)/bin/pytest

# Refresh docs/screenshots/ from the browser tests (they drive the sandbox portal in Chromium).
screenshots: $(STAMP_TEST)
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(VENV)/bin/pytest tests/browser -q

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The application packages are held to mypy; tests and benchmarks are typed loosely.
typecheck: $(STAMP_TEST)
	DJANGO_ENV_FILE=tests/test.env $(VENV)/bin/mypy bitrixapp integration sandbox

check: lint typecheck test

clean:
	rm -rf $(VENV) var db.sqlite3 staticfiles
