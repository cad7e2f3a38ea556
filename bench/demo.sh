#!/usr/bin/env bash
# The main job on one machine: seed a file with one node, fetch it with another through the swarm, compare.
# Usage: bash bench/demo.sh [SIZE_MIB]   (after: dotnet build -c Release Swarm.Cli)
set -euo pipefail
cd "$(dirname "$0")/.."
swarm=Swarm.Cli/bin/Release/net10.0/swarm
[ -x "$swarm" ] || dotnet build -c Release Swarm.Cli >/dev/null
size_mib=${1:-256}
work=$(mktemp -d /tmp/swarm-demo.XXXXXX)
seed_pid=
cleanup() { [ -n "$seed_pid" ] && kill "$seed_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

echo "creating a ${size_mib} MiB file"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/big.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$swarm" seed "$work/big.bin" --data-dir "$work/seed-node" --listen "127.0.0.1:$port" > "$work/id" &
seed_pid=$!
for _ in $(seq 300); do [ -s "$work/id" ] && break; sleep 0.1; done
id=$(head -1 "$work/id")
[ -n "$id" ] || { echo "seed did not print an id"; exit 1; }

"$swarm" get "$id" --peer "127.0.0.1:$port" -o "$work/out.bin" --data-dir "$work/get-node"
cmp "$work/big.bin" "$work/out.bin" && echo "OK: out.bin is byte-identical to big.bin ($id)"
