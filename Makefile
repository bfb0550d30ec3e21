# The two commands of the README's quick start, and a few helpers. Each target bootstraps first
# (idempotent: installs what is missing, starts Redis, ClickHouse and kinesis-local on 127.0.0.1).
SHELL := /bin/bash
export LEIN_ROOT := 1
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: demo demo-full test unit bootstrap services-stop bench

demo: bootstrap          ## the main job on embedded defaults
	pistats demo

demo-full: bootstrap     ## the whole system: SDK traffic through the gateway, Storm, a push campaign, the clicks back
	pistats demo --full

test: bootstrap          ## every test: unit, integration against real services, real Storm
	pytest

unit:                    ## fast unit tests only (no services)
	pytest tests/unit -q

bootstrap:
	scripts/bootstrap

services-stop:
	pistats services stop all

bench: bootstrap         ## the README's benchmarks, one after another (several minutes; best on an idle machine)
	python benchmarks/ingest_validate.py
	python benchmarks/generate_throughput.py
	python benchmarks/spout_emit.py
	python benchmarks/enrich_chain.py
	python benchmarks/store_insert.py
	python benchmarks/registry.py
	python benchmarks/push.py
	python benchmarks/gateway.py
	python benchmarks/e2e.py --events 60000 --shards 4
	python benchmarks/compare.py
	python benchmarks/topology_idle.py
	python benchmarks/multilang_serializer.py
