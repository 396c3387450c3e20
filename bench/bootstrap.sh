#!/usr/bin/env bash
# Installs what `make bench` needs beyond `make build`'s toolchain: bench/'s
# own npm packages (the competing SDKs, esbuild, Playwright's driver) and
# twiggy (where the wasm's bytes go). Safe to run again: skips what is there.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

# Skipped while node_modules is newer than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "bench: installing npm packages in bench/"
    npm ci --no-audit --no-fund --loglevel=error
fi

# twiggy is optional: without it the size table has no breakdown.
if ! command -v twiggy >/dev/null 2>&1; then
    echo "bench: cargo install twiggy (a minute or two, once)"
    cargo install --quiet --locked twiggy || echo "bench: twiggy did not install; the size breakdown will be skipped" >&2
fi
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
    echo "bench: Chromium is missing: run 'make bootstrap' (or set CHROMIUM to a Chromium binary)" >&2
    exit 1
fi
