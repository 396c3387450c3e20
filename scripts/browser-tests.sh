#!/usr/bin/env bash
# Runs the wasm browser tests (tests/*.rs) in headless Chrome and Firefox
# against dev auth servers started here on free loopback ports, and stops the
# servers afterwards, whether the tests pass or not.
#
#   scripts/browser-tests.sh [--chrome] [--firefox] [-- test-filter]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PWD/node_modules/.bin:$PATH"

browsers=()
while [ $# -gt 0 ]; do
    case $1 in
        --chrome|--firefox) browsers+=("$1"); shift ;;
        --) shift; break ;;
        *) echo "browser-tests.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#browsers[@]} -gt 0 ] || browsers=(--chrome --firefox)

cargo build --quiet -p tokenkeeper-devserver

servers=()
stop_servers() {
    for name in "${servers[@]}"; do
        pid=$(cat "target/devserver/$name.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
}
trap stop_servers EXIT

# The main server every test uses; a second one stands for "another origin".
servers+=(main)
TOKENKEEPER_SERVER=$(scripts/devserver.sh main)
servers+=(other)
TOKENKEEPER_OTHER_SERVER=$(scripts/devserver.sh other --cors-any)
export TOKENKEEPER_SERVER TOKENKEEPER_OTHER_SERVER
echo "browser tests against $TOKENKEEPER_SERVER (other origin: $TOKENKEEPER_OTHER_SERVER)"

status=0
for browser in "${browsers[@]}"; do
    echo "=== wasm-pack test --headless $browser"
    # One browser at a time: the tests share the dev server's counters.
    wasm-pack test --headless "$browser" -- "$@" || status=$?
    [ $status -eq 0 ] || break
done
exit $status
