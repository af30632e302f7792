# Every target installs what it needs into .venv first, so a fresh clone needs no other step.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

export HOST ?= 127.0.0.1
export PORT ?= 5000
export REDIS_URL ?= redis://127.0.0.1:6379/0
export WORKER_QUEUES ?= default,heavy
export WORKER_CONCURRENCY ?= 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: up run worker redis test lint clean bench bench-quick

$(STAMP): setup.cfg pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

up: $(STAMP)  ## Redis (unless one answers at REDIS_URL), the web server and a worker
	mkdir -p var
	honcho start --port $(PORT)

run: $(STAMP)  ## the web server on HOST:PORT
	python run.py

worker: $(STAMP)  ## a worker consuming WORKER_QUEUES with WORKER_CONCURRENCY processes
	celery -A celery_worker worker --loglevel=info \
		--queues=$(WORKER_QUEUES) --concurrency=$(WORKER_CONCURRENCY)

redis: $(STAMP)  ## a private Redis at REDIS_URL, in the foreground
	python -m devservers.embedded_redis

test: $(STAMP)
	python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	ruff check .

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .ruff_cache

bench: $(STAMP)  ## this service against the baseline app, full run (< 10 min)
	python -m bench.run

bench-quick: $(STAMP)  ## the same figures, shorter (< 2 min)
	python -m bench.run --quick
