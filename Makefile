# Steward: the two set-up commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
STEWARD_HOME ?= $(HOME)/.cache/steward
export STEWARD_HOME
# Debian packages: what the build links against (C libraries through .systemLibrary targets),
# SQLite for governance state, poppler-utils (pdftotext) for PDF documents, tmux for the
# terminal chat test, chromium (headless) for the web chat page test.
DEB_PACKAGES := libssl-dev libmicrohttpd-dev libsqlite3-dev poppler-utils tmux chromium
SWIFT_RELEASE := swift build -c release
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test test-clients deps models build build-release bench bench-server bench-embed clean dist test-dist

## deps: install missing Debian packages (idempotent; skips what is installed)
deps:
	@scripts/install-deps $(DEB_PACKAGES)

## models: fetch and verify the pinned models into $(STEWARD_HOME)/models
models:
	@scripts/fetch-models

build-release: deps
	$(SWIFT_RELEASE)

## run: set up, then serve the default model (and the embedding model) on http://$(HOST):$(PORT)/
run: deps models build-release
	.build/release/steward plan --model smollm2-135m-instruct --model all-minilm-l6-v2
	@echo
	@echo "Open http://$(HOST):$(PORT)/ to chat; OpenAI API at /v1, Ollama API at /api, metrics at /metrics. Ctrl-C stops."
	.build/release/steward serve --model smollm2-135m-instruct --model all-minilm-l6-v2 --host $(HOST) --port $(PORT)

## test: the same set-up, then the whole suite (real models, optimized build), then the real
## OpenAI and Ollama Python clients against a live server (scripts/test-clients makes their venv),
## then the self-contained dist binary run with the Swift toolchain hidden
test: deps models
	swift build -c release --build-tests -Xswiftc -enable-testing
	swift test -c release --skip-build -Xswiftc -enable-testing
	scripts/test-clients
	scripts/make-dist
	scripts/test-dist

## test-clients: only the real-client tests (needs .build/release/steward)
test-clients:
	scripts/test-clients

## bench: Steward vs llama.cpp in the same run (builds the peer once, ~8 min, cached)
bench: deps models build-release
	scripts/bench-vs-llamacpp --threads 2

## bench-embed: all-MiniLM-L6-v2 sentences/s at batch 1 and 32, Steward vs sentence-transformers
## (needs a venv with sentence-transformers: PYTHON=/path/to/python, default /work/venv-torch/bin/python)
bench-embed: models build-release
	scripts/bench-embeddings --threads 2

## dist: a self-contained dist/steward for machines without Swift (static Swift runtime,
## libmicrohttpd and libcrypto linked in; dist/lib holds the two GnuTLS dependencies Debian ships
## no static archive of). Built in .build-dist; about 5 minutes from cold (see scripts/make-dist).
dist: deps
	scripts/make-dist

## test-dist: runs dist/steward with the Swift toolchain hidden (`make test` runs it too)
test-dist: dist models
	scripts/test-dist

## bench-server: steward serve vs llama-server (same peer build), latency, 1/4/8-stream throughput,
## peak RSS, /health under wrk; add SOAK=10 for a 10-minute soak of mixed and dropped streams
SOAK ?= 0
bench-server: deps models build-release
	@scripts/install-deps wrk
	scripts/bench-server --threads 2 --parallel 8 --soak $(SOAK)

clean:
	rm -rf .build .build-dist dist
