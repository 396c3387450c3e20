#!/usr/bin/env bash
# Installs what `make demo`, `make test` and `make bench` need, skipping what is
# already present. Safe to run again: a second run takes seconds.
#
#   scripts/bootstrap.sh            everything (toolchain, browsers, npm packages, the examples')
#   scripts/bootstrap.sh build      only what building the package needs
#   scripts/bootstrap.sh clients    that, and the HTTP-client recipes' npm packages (`make types`)
#
# Everything is installed from package registries (rustup, crates.io, npm,
# Debian): nothing downloads prebuilt binaries from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" = 0 ]; }

missing_apt=()
need_apt() { missing_apt+=("$@"); }

install_apt() {
    [ ${#missing_apt[@]} -eq 0 ] && return 0
    if is_root && have apt-get; then
        say "installing Debian packages: ${missing_apt[*]}"
        # Only refresh the package lists when they are absent or a day old.
        if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
            apt-get update -qq
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
    else
        echo "bootstrap: these system packages are missing: ${missing_apt[*]}" >&2
        echo "bootstrap: install them as root, e.g.:  sudo apt-get install -y ${missing_apt[*]}" >&2
        echo "bootstrap: (on other systems: Chromium with a matching chromedriver, Firefox, Node.js >= 20.19 with npm)" >&2
        exit 1
    fi
}

# --- Rust toolchain pieces -------------------------------------------------
if ! have cargo; then
    echo "bootstrap: cargo is missing: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$bindgen_version" ]; then
    echo "bootstrap: could not read wasm-bindgen's version from Cargo.lock" >&2
    exit 1
fi

cargo_install() { # crate [version]
    local crate=$1 version=${2:-}
    say "cargo install $crate${version:+ $version} (a few minutes, once)"
    if ! cargo install --quiet --locked "$crate" ${version:+--version "$version"}; then
        say "retrying $crate without --locked"
        cargo install --quiet "$crate" ${version:+--version "$version"}
    fi
}

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
    cargo_install wasm-bindgen-cli "$bindgen_version"
fi
have wasm-pack || cargo_install wasm-pack

# --- Node, npm packages (wasm-opt from npm binaryen; Playwright) ------------
have node || need_apt nodejs
have npm || need_apt npm
if [ "$what" = all ]; then
    have chromium || need_apt chromium
    have chromedriver || need_apt chromium-driver
    have firefox || have firefox-esr || need_apt firefox-esr
fi
install_apt

# npm packages: the tools' (root), the HTTP-client recipes' (tests/clients),
# and the React and Vue examples' (their
# `tokenkeeper` dependency links to pkg/, which `make build` fills). Skipped
# while node_modules is newer than the lock file.
npm_ci() { # dir
    local dir=$1
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        say "installing npm packages in $dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}
npm_ci .
if [ "$what" = all ]; then
    # Vite 8 (the examples) needs Node.js 20.19 or later.
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
        echo "bootstrap: Node.js $(node --version) is too old: the examples' Vite needs 20.19 or later" >&2
        exit 1
    fi
    npm_ci www/react
    npm_ci www/vue
fi
if [ "$what" = all ] || [ "$what" = clients ]; then
    # The README's HTTP-client recipes: axios, ky, ofetch, openapi-fetch.
    npm_ci tests/clients
fi

if [ "$what" = all ]; then
    # The npm geckodriver package downloads a binary, which fails here: build it.
    have geckodriver || cargo_install geckodriver
fi

say "ready: wasm-bindgen $bindgen_version, $(wasm-pack --version), wasm-opt $(wasm-opt --version | awk '{print $3}')"
