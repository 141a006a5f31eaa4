# Two commands: `make run` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint typecheck check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# Local defaults for development: debug on, fresh random secrets. Never used in production,
# where real environment variables are set and no .env file exists.
.env:
	@$(PYTHON) -c "import base64,os,secrets; open('.env','w').write(\
	'# Written by make for local development. Production uses real environment variables.\n'\
	'DJANGO_DEBUG=true\n'\
	'DJANGO_SECRET_KEY=' + secrets.token_urlsafe(48) + '\n'\
	'FIELD_ENCRYPTION_KEY=' + base64.urlsafe_b64encode(os.urandom(32)).decode() + '\n')"
	@echo "wrote .env with local development defaults"

run: $(STAMP_RUN) .env
	$(PY) manage.py migrate --noinput
	mkdir -p var
	$(PY) bin/procfile-dev > var/Procfile.dev
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho -f var/Procfile.dev -d . start

test: $(STAMP_TEST) .env
	$(VENV)/bin/pytest

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP_TEST) .env
	$(VENV)/bin/mypy .

check: lint typecheck test

clean:
	rm -rf $(VENV) var db.sqlite3 staticfiles
