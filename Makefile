# Every target installs what it needs into .venv first, so a fresh clone needs no other step.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

export HOST ?= 127.0.0.1
export PORT ?= 5000
export REDIS_URL ?= redis://127.0.0.1:6379/0
export WORKER_QUEUES ?= default,heavy
export WORKER_CONCURRENCY ?= 2
export WORKER_POOL ?= prefork
export WORKER_NAME ?= celery@%h
export WORKER_PREFETCH ?= 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: up run serve worker beat flower redis test lint clean bench bench-quick

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,dev,flower]'
	touch $(STAMP)

up: $(STAMP)  ## Redis (unless one answers at REDIS_URL), the web server, a worker and beat
	mkdir -p var
	honcho start --port $(PORT)

run: $(STAMP)  ## the web server on HOST:PORT
	python run.py

serve: $(STAMP)  ## the production web server: gunicorn with gunicorn.conf.py, on HOST:PORT
	rm -rf var/prometheus && mkdir -p var/prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus gunicorn

worker: $(STAMP)  ## a worker: WORKER_QUEUES, WORKER_CONCURRENCY, WORKER_POOL, WORKER_NAME, WORKER_PREFETCH
	celery -A celery_worker worker --loglevel=info \
		--queues=$(WORKER_QUEUES) --concurrency=$(WORKER_CONCURRENCY) \
		--pool=$(WORKER_POOL) --hostname=$(WORKER_NAME) \
		--prefetch-multiplier=$(WORKER_PREFETCH)

beat: $(STAMP)  ## celery beat with redbeat's scheduler: schedules and held one-off jobs (one runs; more wait on its lock)
	celery -A celery_worker beat --loglevel=info

# In development Flower's HTTP API (/api/*) answers without a login, as its pages do;
# elsewhere Flower needs FLOWER_BASIC_AUTH, which covers its pages and its API.
flower: $(STAMP)  ## Flower on FLOWER_PORT (5555); outside development only with FLOWER_BASIC_AUTH
	@if [ "$${APP_CONFIG:-development}" != development ] && [ -z "$${FLOWER_BASIC_AUTH:-}" ]; then \
		echo "make flower: set FLOWER_BASIC_AUTH=user:password outside development" >&2; exit 2; fi
	if [ -z "$${FLOWER_BASIC_AUTH:-}" ]; then export FLOWER_UNAUTHENTICATED_API=true; fi; \
	celery -A celery_worker flower --address=$(HOST) --port=$${FLOWER_PORT:-5555}

redis: $(STAMP)  ## a private Redis at REDIS_URL, in the foreground
	python -m devservers.embedded_redis

# make test runs a fifth of each volume test's load on 4 pytest-xdist processes (a test
# file stays on one); .ci/run runs the whole (TEST_SCALE=1).
export TEST_SCALE ?= 0.2
TEST_PROCESSES ?= 4

test: $(STAMP)
	python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	ruff check .
	ruff format --check .

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .ruff_cache

bench: $(STAMP)  ## this service against the baseline app, full run (~18 min)
	python -m bench.run

bench-quick: $(STAMP)  ## the same figures, shorter (~3 min)
	python -m bench.run --quick
