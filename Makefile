# tokenkeeper — the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs first (scripts/bootstrap.sh, idempotent).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
WASM_TARGET := wasm32-unknown-unknown
DEMO_PORT ?= 8080
DEMO_FLAGS ?= --access-ttl 20s --refresh-ttl 1h --reuse-grace-ms 2000

.PHONY: all bootstrap bootstrap-build build demo test lint unit browser-test e2e clean help

help:
	@echo "make demo   build the package and serve the live demo on http://127.0.0.1:$(DEMO_PORT)/"
	@echo "make test   every check: fmt, clippy (native + wasm), unit and dev-server tests, browser tests"
	@echo "make build  build the npm package into pkg/"

bootstrap:
	@scripts/bootstrap.sh

bootstrap-build:
	@scripts/bootstrap.sh build

## The npm package (wasm-pack output) in pkg/.
build: bootstrap-build
	wasm-pack build --release --target web --out-dir pkg --no-pack
	@printf 'pkg/tokenkeeper_bg.wasm: %s bytes, %s gzipped\n' \
		"$$(wc -c < pkg/tokenkeeper_bg.wasm)" "$$(gzip -9c pkg/tokenkeeper_bg.wasm | wc -c)"

## Build, then serve www/ and pkg/ with the dev auth server on 127.0.0.1:$(DEMO_PORT).
demo: build
	cargo build --quiet -p tokenkeeper-devserver
	@echo
	@echo "  tokenkeeper demo: open http://127.0.0.1:$(DEMO_PORT)/  (log in as user1 / password1; Ctrl-C stops)"
	@echo
	target/debug/tokenkeeper-devserver --port $(DEMO_PORT) --www www --pkg pkg $(DEMO_FLAGS)

## Every test: formatting, lints, native unit + dev-server tests, browser tests.
test: bootstrap lint unit browser-test e2e

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo clippy -p tokenkeeper --target $(WASM_TARGET) --all-targets --quiet -- -D warnings

unit:
	cargo test --workspace --quiet

browser-test:
	scripts/browser-tests.sh --chrome --firefox

## The demo page end to end in headless Chromium (Playwright, node --test).
e2e: build
	cargo build --quiet -p tokenkeeper-devserver
	node --test tests/e2e/

clean:
	cargo clean
	rm -rf pkg
