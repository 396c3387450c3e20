# tokenkeeper — the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs first (scripts/bootstrap.sh, idempotent).

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
WASM_TARGET := wasm32-unknown-unknown
DEMO_PORT ?= 8080
DEMO_FLAGS ?= --access-ttl 10s --refresh-ttl 1h --reuse-grace-ms 2000

.PHONY: all bootstrap bootstrap-build build types examples demo test lint unit browser-test e2e clean help fuzz bench soak simulate mutants

help:
	@echo "make demo   build the package and serve the live demo on http://127.0.0.1:$(DEMO_PORT)/"
	@echo "make test   every check: fmt, clippy (native + wasm), unit and dev-server tests, browser tests"
	@echo "make build  build the npm package into pkg/ (and target/npm/tokenkeeper.tgz)"

bootstrap:
	@scripts/bootstrap.sh

bootstrap-build:
	@scripts/bootstrap.sh build

## The npm package in pkg/: the ES module build (`--target web`, for bundlers
## and <script type="module">), the classic-script build in pkg/classic/ (the
## global `tokenkeeper`, for a plain <script src>), their package.json, and the
## packed tarball target/npm/tokenkeeper.tgz, exactly what `npm publish` sends.
# Panic locations in the wasm name source files: keep the build machine's
# paths (home, checkout) out of the shipped package.
BUILD_RUSTFLAGS = --remap-path-prefix=$(HOME)=~ --remap-path-prefix=$(CURDIR)=.
build: bootstrap-build
	RUSTFLAGS="$(BUILD_RUSTFLAGS)" wasm-pack build --release --target web --out-dir pkg
	node scripts/package.mjs pkg
	@mkdir -p target/npm
	@rm -f target/npm/tokenkeeper*.tgz
	@npm pack ./pkg --pack-destination target/npm --silent >/dev/null
	@mv target/npm/tokenkeeper-*.tgz target/npm/tokenkeeper.tgz
	@for f in pkg/tokenkeeper_bg.wasm pkg/tokenkeeper.js pkg/classic/tokenkeeper.js; do \
		printf '%-28s %7s bytes, %6s gzipped\n' "$$f" "$$(wc -c < $$f)" "$$(gzip -9c $$f | wc -c)"; done
	@printf '%-28s %7s bytes (npm pack)\n' target/npm/tokenkeeper.tgz "$$(wc -c < target/npm/tokenkeeper.tgz)"

## TypeScript: every public API, used as an app would, under tsc --strict;
## and the README's HTTP-client recipes (axios, ky, ofetch, openapi-fetch)
## with the harness that runs them, against each client's own types.
types: build
	@scripts/bootstrap.sh clients
	tsc --strict --noEmit -p tests/types
	node tests/clients/prepare.mjs
	tsc --strict --noEmit -p tests/clients

## The React and Vue examples (www/react, www/vue), type-checked and built with
## Vite against the package installed from its tarball, as `npm install
## tokenkeeper` installs it (files, exports and all), not a symlink to pkg/.
EXAMPLES := www/react www/vue
examples: bootstrap build
	@for dir in $(EXAMPLES); do \
		echo "building $$dir"; \
		(cd $$dir && npm install --no-save --no-audit --no-fund --loglevel=error ../../target/npm/tokenkeeper.tgz \
			&& npm run --silent build -- --logLevel warn) || exit 1; \
	done

## Build, then serve www/ and pkg/ with the dev auth server on 127.0.0.1:$(DEMO_PORT)
## (the examples at /react/dist/ and /vue/dist/), and an OpenID provider (npm
## oidc-provider, scripts/oidc-provider.mjs) on 127.0.0.1:$(DEMO_IDP_PORT).
DEMO_IDP_PORT ?= 8081
demo: build examples
	cargo build --quiet -p tokenkeeper-devserver
	@echo
	@echo "  tokenkeeper demo: open http://127.0.0.1:$(DEMO_PORT)/  (log in as user1 / password1; Ctrl-C stops)"
	@echo "  its identity provider: http://127.0.0.1:$(DEMO_IDP_PORT) (the same user)"
	@echo
	@node scripts/oidc-provider.mjs --port $(DEMO_IDP_PORT) --app-origin http://127.0.0.1:$(DEMO_PORT) \
		--access-ttl 10 >/dev/null & idp=$$!; trap "kill $$idp 2>/dev/null" EXIT INT TERM; \
	target/debug/tokenkeeper-devserver --port $(DEMO_PORT) --www www --pkg pkg \
		--issuer http://127.0.0.1:$(DEMO_IDP_PORT) $(DEMO_FLAGS)

## Every test: formatting, lints, native unit + dev-server tests, browser tests.
test: bootstrap lint unit browser-test types e2e

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo clippy -p tokenkeeper --target $(WASM_TARGET) --all-targets --quiet -- -D warnings

## Native tests, the core's simulator among them (core/tests/simulate.rs:
## 10,000 schedules), and the faults planted to show it catches them.
unit:
	cargo test --workspace --quiet
	cargo test --quiet -p tokenkeeper-core --features planted-faults --test planted
	node --test tests/js/

browser-test:
	scripts/browser-tests.sh --chrome --firefox

## In headless Chromium (Playwright, node --test) against the dev server: the
## demo page, the React and Vue examples (built, and under `vite` dev; TanStack
## Query in the React one), the README's <script> snippets, a webpack bundle,
## the README's HTTP-client recipes (clients.test.mjs), and the hardening tests
## (hardening-*.test.mjs: clocks, faults, leaks, CSP, and a 2-minute soak).
e2e: build examples
	cargo build --quiet -p tokenkeeper-devserver
	node --test tests/e2e/

clean:
	cargo clean
	rm -rf pkg

## Fuzz the parsers of untrusted input with cargo-fuzz (libFuzzer), FUZZ_RUNS
## executions each (not part of `make test`; the short property-test version is).
## cargo-fuzz wants nightly flags: RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_RUNS ?= 10000000
FUZZ_TARGETS := jwt token_response tab_message options json_value json_sized
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	@for t in $(FUZZ_TARGETS); do \
		echo "=== fuzz $$t ($(FUZZ_RUNS) runs)"; \
		(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -runs=$(FUZZ_RUNS) -print_final_stats=1 2>&1 \
			| grep -E '^Done|stat::number_of_executed_units|cov:' | tail -2) || exit 1; \
	done

## The core's simulator at scale (not part of `make test`, which runs 10,000
## schedules): SIM_SCHEDULES schedules of tabs, server, clocks and network from
## seed SIM_FIRST, every invariant checked after every step; prints schedules
## per second and what was checked. SIM_SEED=n replays one schedule with its
## whole trace. Built with the `sim` profile (optimized, with checks).
SIM_SCHEDULES ?= 1000000
SIM_FIRST ?= 1
simulate: bootstrap
	SIM_SCHEDULES=$(SIM_SCHEDULES) SIM_FIRST=$(SIM_FIRST) cargo test --quiet --profile sim \
		-p tokenkeeper-core --test simulate simulate_many -- --ignored --nocapture

## Mutation testing of the core (not part of `make test`): cargo-mutants over
## tokenkeeper-core with its native tests and the short simulation
## (.cargo/mutants.toml says which), MUTANTS_JOBS at once (about 40 min on 2
## cores). Prints caught / missed; the lists are in mutants.out/. MUTANTS_ARGS
## passes more (e.g. --file core/src/session.rs, --shard 1/4, --iterate).
MUTANTS_ARGS ?=
MUTANTS_SIM ?= 2000
MUTANTS_JOBS ?= 2
mutants: bootstrap
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
	SIM_SHORT=$(MUTANTS_SIM) cargo mutants -p tokenkeeper-core --test-package tokenkeeper-core \
		-j $(MUTANTS_JOBS) $(MUTANTS_ARGS)

## Benchmarks, side by side with the JS SDKs (not part of `make test`): shipped
## size, per-request overhead, refresh storm, new-tab handoff, start-up and
## memory, in headless Chromium against the dev server on loopback. Prints a
## table and writes bench/results.json; no number fails it, only a broken
## harness does. BENCH_ONLY=overhead,memory (size always runs) measures part,
## into bench/out/results-partial.json.
bench: bootstrap build
	cargo build --quiet -p tokenkeeper-devserver
	@bench/bootstrap.sh
	node bench/run.mjs

## The long soak (not part of `make test`, which runs 120 s of it): 4 tabs of
## one session in Chromium, one hidden and throttled, 5 s access tokens,
## SOAK_SECONDS of mixed API calls against the dev server on loopback. Prints
## the figures; fails on any 401 or error seen by the app, any reuse
## detection, or refreshes beyond one per rotation.
SOAK_SECONDS ?= 600
soak: bootstrap build
	cargo build --quiet -p tokenkeeper-devserver
	SOAK_SECONDS=$(SOAK_SECONDS) node --test tests/e2e/hardening-soak.test.mjs
