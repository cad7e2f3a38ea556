#!/usr/bin/env bash
# Soak: two node services on loopback for a while; one serves a large file, the other fetches it again and again
# (get, then rm, in a loop). Every 10 s both nodes' RSS and managed heap are read from /metrics. At the end it prints
# the peak RSS of each and compares the first and the last minutes: memory must not grow beyond noise.
#   bench/soak.sh [--minutes 10] [--size 4GiB]
set -euo pipefail
MINUTES=10; SIZE=4GiB
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        *) echo "usage: $0 [--minutes N] [--size SIZE]" >&2; exit 1 ;;
    esac
done
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK=$(mktemp -d /tmp/swarm-soak.XXXXXX)
OUT="$REPO/bench/results/soak-$(date -u +%Y%m%d-%H%M%S).csv"
SWARM="dotnet $REPO/Swarm.Cli/bin/Release/net10.0/swarm.dll"
cleanup() { set +e; [ -n "${A:-}" ] && kill -TERM "$A" "$B" 2>/dev/null; sleep 2; kill -9 "$A" "$B" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
bytes=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)([KMG]i?B)?', sys.argv[1]); print(int(m.group(1))*{'':1,'K':1024,'M':1<<20,'G':1<<30}[(m.group(2) or '')[:1]])" "$SIZE")
echo "[soak] building; making a $SIZE file" >&2
(cd "$REPO" && dotnet build -c Release Swarm.Cli -v q -nologo >/dev/null)
head -c "$bytes" /dev/urandom > "$WORK/file.bin"
$SWARM node --data-dir "$WORK/a" --listen 127.0.0.1:17500 --metrics 127.0.0.1:17502 2> "$WORK/a.log" & A=$!
$SWARM node --data-dir "$WORK/b" --listen 127.0.0.1:17510 --metrics 127.0.0.1:17512 --bootstrap 127.0.0.1:17500 2> "$WORK/b.log" & B=$!
for p in 17502 17512; do until curl -sf "http://127.0.0.1:$p/healthz" >/dev/null; do sleep 0.2; done; done
ID=$($SWARM seed "$WORK/file.bin" --data-dir "$WORK/a" 2>/dev/null)
rm -f "$WORK/file.bin"
echo "[soak] node A serves $ID; node B fetches it in a loop for $MINUTES minutes; samples in $OUT" >&2
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
echo "t_s,a_rss,a_heap,b_rss,b_heap,b_fetches" > "$OUT"
start=$(date +%s); fetches=0; next=0
while [ $(( $(date +%s) - start )) -lt $(( MINUTES * 60 )) ]; do
    $SWARM get "$ID" -o "$WORK/out.bin" --data-dir "$WORK/b" >/dev/null 2>&1 || echo "[soak] a fetch failed" >&2
    rm -f "$WORK/out.bin"; $SWARM rm "$ID" --data-dir "$WORK/b" >/dev/null 2>&1 || true
    fetches=$((fetches + 1))
    now=$(( $(date +%s) - start ))
    if [ "$now" -ge "$next" ]; then
        echo "$now,$(metric 17502 process_resident_memory_bytes),$(metric 17502 dotnet_gc_heap_bytes),$(metric 17512 process_resident_memory_bytes),$(metric 17512 dotnet_gc_heap_bytes),$fetches" >> "$OUT"
        next=$(( now + 10 ))
    fi
done
python3 - "$OUT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def mb(x): return float(x) / 2**20
# Pools (pieces, buffers) and the JIT fill up in the first minutes: growth is judged on the second half of the run.
half = rows[len(rows) // 2:]
for node in ("a", "b"):
    rss = [mb(r[f"{node}_rss"]) for r in rows]; heap = [mb(r[f"{node}_heap"]) for r in rows]
    hr = [mb(r[f"{node}_rss"]) for r in half]; hh = [mb(r[f"{node}_heap"]) for r in half]
    q = max(1, len(hr) // 4)
    a, b = sum(hr[:q]) / q, sum(hr[-q:]) / q
    print(f"node {node.upper()}: peak RSS {max(rss):.0f} MiB (first sample {rss[0]:.0f}); second half of the run: RSS {a:.0f} -> {b:.0f} MiB "
          f"({(b / a - 1) * 100:+.1f}%), managed heap {sum(hh[:q]) / q:.1f} -> {sum(hh[-q:]) / q:.1f} MiB")
print(f"{rows[-1]['b_fetches']} fetches")
PY
