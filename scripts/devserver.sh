#!/usr/bin/env bash
# Starts a dev auth server on a free loopback port in the background and prints
# its URL. Usage: scripts/devserver.sh NAME [server flags...]
# Its pid goes to target/devserver/NAME.pid, its log to target/devserver/NAME.log.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
dir=target/devserver
mkdir -p "$dir"
bin=target/debug/tokenkeeper-devserver
[ -x "$bin" ] || { echo "devserver.sh: build it first: cargo build -p tokenkeeper-devserver" >&2; exit 1; }
rm -f "$dir/$name.port"
"$bin" --port 0 --port-file "$dir/$name.port" --quiet "$@" >"$dir/$name.log" 2>&1 &
echo $! >"$dir/$name.pid"
for _ in $(seq 1 100); do
    if [ -s "$dir/$name.port" ]; then
        echo "http://127.0.0.1:$(cat "$dir/$name.port")"
        exit 0
    fi
    kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break
    sleep 0.1
done
echo "devserver.sh: the $name server did not start; its log:" >&2
cat "$dir/$name.log" >&2
exit 1
