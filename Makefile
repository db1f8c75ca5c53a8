# make run: the portal with demo accounts at http://localhost:8000
# make test: the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: setup run run-ldap test lint format bench clean translations

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# htmx for the portal's pages; jsQR for the 邮箱安全 App's 扫一扫 where the browser has no BarcodeDetector.
static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/jsqr/dist/jsQR.js static/vendor/jsQR.js
	touch $@

setup: $(VENV)/.installed static/vendor/.installed

# The WeChat API stub (127.0.0.1:8001) runs beside gunicorn and stops with it.
run: setup
	export PORTAL_ENV=development PORTAL_DEV_SIMULATORS=1; \
	$(VENV)/bin/flask --app wsgi demo && \
	{ $(VENV)/bin/flask --app wsgi wechat-stub --port 8001 & stub=$$!; \
	  trap 'kill $$stub 2>/dev/null' EXIT INT TERM; \
	  echo "Portal: http://localhost:8000   simulators: mini-program http://localhost:8000/dev/miniprogram" \
	    " · 邮箱安全 App http://localhost:8000/dev/app"; \
	  $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app; }

# The same, with passwords checked in a throw-away OpenLDAP (Debian's slapd; demo directory users printed).
run-ldap: setup
	export PORTAL_ENV=development PORTAL_DEV_SIMULATORS=1; \
	$(VENV)/bin/flask --app wsgi demo && rm -f instance/dev-ldap.env && \
	{ $(VENV)/bin/flask --app wsgi dev-ldap --env-file instance/dev-ldap.env & ldap=$$!; \
	  $(VENV)/bin/flask --app wsgi wechat-stub --port 8001 & stub=$$!; \
	  trap 'kill $$ldap $$stub 2>/dev/null' EXIT INT TERM; \
	  for i in $$(seq 1 100); do [ -s instance/dev-ldap.env ] && break; sleep 0.2; done; \
	  set -a; . instance/dev-ldap.env; set +a; \
	  echo "Portal (passwords in LDAP): http://localhost:8000"; \
	  $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app; }

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	PYTHONPATH=. $(PY) bench/bench_portal.py
	PYTHONPATH=. $(PY) -m bench.under_load
	PYTHONPATH=. $(PY) -m bench.admin_pages $(BENCH_ADMIN_ARGS)

# After changing a user-visible string: extract it, merge it into the English catalog (translate the
# new empty entries in translations/en/LC_MESSAGES/messages.po), compile. All three files are committed.
translations: setup
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output --omit-header -o translations/messages.pot .
	$(VENV)/bin/pybabel update -i translations/messages.pot -d translations -l en --no-fuzzy-matching
	$(VENV)/bin/pybabel compile -d translations -l en --statistics

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules static/vendor instance .pytest_cache
