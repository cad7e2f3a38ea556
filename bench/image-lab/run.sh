#!/usr/bin/env bash
# The image lab: N hosts in network namespaces behind one bridge, every link shaped with tc tbf, each host running its
# own containerd. An "origin" host runs Debian's docker-registry as the upstream, holding one image. In one run, every
# host pulls the image at the same moment (ctr content fetch: every blob, verified by containerd, no unpacking):
#   direct   - straight from the upstream
#   cache    - through a docker-registry pull-through cache on its own host (the usual single-mirror set-up)
#   swarm    - through each host's own Swarm node (registry mirror on 127.0.0.1:7401 inside the host), nothing preheated
#   preheat  - the same, after `swarm seed oci://…` on a seed host (not timed)
# and records each pull's time and the bytes the upstream sent (its interface counter). Run as root; everything it
# makes is removed on exit, Ctrl-C included.
#
#   bench/image-lab/run.sh --hosts 6 --layers 48MiB,48MiB,32MiB --rate 50mbit
set -euo pipefail

HOSTS=6; LAYERS="48MiB,48MiB,32MiB"; RATE="50mbit"; SCENARIOS="direct,cache,swarm,preheat"; OUT=""
usage() {
    cat <<EOF
usage: $0 [--hosts N] [--layers SIZE,SIZE,...] [--rate RATE] [--scenarios direct,cache,swarm,preheat] [--out DIR]
  --hosts      hosts pulling at once (default 6)
  --layers     layer sizes of the image (default 48MiB,48MiB,32MiB)
  --rate       every link, both ways, as tc understands it (default 50mbit)
  --scenarios  which to run (default direct,cache,swarm,preheat)
  --out        results directory (default bench/results/image-lab-<time>)
EOF
}
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) HOSTS="$2"; shift 2 ;;
        --layers) LAYERS="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 1 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces, tc, containerd)" >&2; exit 1; }
for tool in ip tc docker-registry skopeo containerd ctr dotnet python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is missing (apt-get install -y iproute2 docker-registry skopeo containerd python3; dotnet from the README)" >&2; exit 1; }
done

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
source "$REPO/bench/lab-lib.sh"
SIZES=""; for s in ${LAYERS//,/ }; do SIZES="$SIZES${SIZES:+,}$(to_bytes "$s")"; done
RATE_BITS=$(to_bits "$RATE")
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="${OUT:-$REPO/bench/results/image-lab-$STAMP}"
mkdir -p "$OUT"
CSV="$OUT/image-lab.csv"
LAB=/tmp/image-lab
BIN=/tmp/swarm-lab-bin
SWARM="dotnet $BIN/swarm.dll"
PREFIX=il
NET=10.78
ORIGIN_IP=$NET.0.1; CACHE_IP=$NET.0.2; SEED_IP=$NET.0.3
UPSTREAM=$ORIGIN_IP:5000
IMAGE=$UPSTREAM/bench/app:v1

log() { echo "[image-lab $(date +%H:%M:%S)] $*" >&2; }

install_cleanup

publish_swarm

registry_config() { # FILE ADDR ROOT [PROXY]
    cat > "$1" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $3}, delete: {enabled: true}}
http: {addr: $2}
EOF
    [ -n "${4:-}" ] && echo "proxy: {remoteurl: $4}" >> "$1"
    return 0
}

wait_http() { # NS URL
    for _ in $(seq 1 100); do ip netns exec "$1" curl -sf -o /dev/null "$2" && return 0; sleep 0.1; done
    echo "run.sh: $2 does not answer" >&2; exit 1
}

cleanup; set -e
mkdir -p "$LAB"
ip route add unreachable $NET.0.0/16
make_hub
make_host o "$ORIGIN_IP" "$RATE_BITS"; make_host c "$CACHE_IP" "$RATE_BITS"; make_host s "$SEED_IP" "$RATE_BITS"
for i in $(seq 1 "$HOSTS"); do make_host "h$i" "$NET.1.$i" "$RATE_BITS"; done

log "making the image (layers $LAYERS) and pushing it to the upstream registry on the origin host"
DIGEST=$(python3 "$REPO/bench/image-lab/mkimage.py" "$LAB/layout" "$SIZES")
IMAGE_BYTES=$(python3 -c "import json,sys; m=json.load(open('$LAB/layout/blobs/sha256/${DIGEST#sha256:}')); print(m['config']['size']+sum(l['size'] for l in m['layers']))")
registry_config "$LAB/upstream.yml" "$UPSTREAM" "$LAB/upstream"
ip netns exec $PREFIX-o docker-registry serve "$LAB/upstream.yml" > "$LAB/upstream.log" 2>&1 & disown
wait_http $PREFIX-o "http://$UPSTREAM/v2/"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$LAB/policy.json"
ip netns exec $PREFIX-o skopeo --policy "$LAB/policy.json" copy -q --dest-tls-verify=false "oci:$LAB/layout:v1" "docker://$IMAGE"
log "image $IMAGE = $DIGEST, $IMAGE_BYTES bytes in blobs"

# The upstream speaks plain HTTP: every Swarm node gets that from its registries.json.
registries_json() { mkdir -p "$1"; echo "{ \"$UPSTREAM\": { \"plainHttp\": true } }" > "$1/registries.json"; }

origin_tx() { ip netns exec $PREFIX-o cat /sys/class/net/eth0/statistics/tx_bytes; }

# A fresh upstream process for every scenario (same storage), and a quiet origin link before the count starts, so no
# transfer left over from the previous scenario is counted.
restart_upstream() {
    pkill -9 -f "docker-registry serve $LAB/upstream.yml" 2>/dev/null || true
    sleep 0.3
    ip netns exec $PREFIX-o docker-registry serve "$LAB/upstream.yml" > "$LAB/upstream.log" 2>&1 & disown
    wait_http $PREFIX-o "http://$UPSTREAM/v2/"
    local last now
    last=$(origin_tx)
    for _ in $(seq 1 30); do
        sleep 1; now=$(origin_tx)
        [ $((now - last)) -lt 20000 ] && return 0
        last=$now
    done
    log "warning: the origin link did not go quiet"
}

# A fresh containerd on every host (a pull measured again needs a fresh root: containerd shares content).
start_containerds() { # SCENARIO MIRROR_URL|-
    local scenario=$1 mirror=$2
    for i in $(seq 1 "$HOSTS"); do
        local d="$LAB/h$i/$scenario"; mkdir -p "$d/hosts/$UPSTREAM"
        { echo "server = \"http://$UPSTREAM\""
          if [ "$mirror" != - ]; then echo "[host.\"$mirror\"]"; echo '  capabilities = ["pull", "resolve"]'; echo '  dial_timeout = "200ms"'
          else echo "[host.\"http://$UPSTREAM\"]"; echo '  capabilities = ["pull", "resolve"]'; fi
        } > "$d/hosts/$UPSTREAM/hosts.toml"
        cat > "$d/c.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/sock"
[ttrpc]
  address = "$d/sock.ttrpc"
EOF
        ( exec ip netns exec "$PREFIX-h$i" containerd --config "$d/c.toml" > "$d/containerd.log" 2>&1 ) &
        disown
    done
    for i in $(seq 1 "$HOSTS"); do
        local d="$LAB/h$i/$scenario"
        for _ in $(seq 1 100); do ctr --address "$d/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
    done
}

pull_all() { # SCENARIO: every host pulls at once; prints each host's seconds
    local scenario=$1 dirs=()
    local t0; t0=$(date +%s.%N)
    for i in $(seq 1 "$HOSTS"); do
        local d="$LAB/h$i/$scenario"; dirs+=("$d"); rm -f "$d/out"
        ip netns exec "$PREFIX-h$i" bash -c "ctr --address $d/sock -n bench content fetch --hosts-dir $d/hosts $IMAGE > $d/pull.log 2>&1 && touch $d/out" &
        echo $! > "$d/pid"
    done
    python3 "$REPO/bench/swarm-lab/watch.py" "$t0" 900 "${dirs[@]}" | grep -v '^ticks '
    wait 2>/dev/null || true
}

stop_in() { for ns in "$@"; do pids=$(ip netns pids "$PREFIX-$ns" 2>/dev/null); [ -n "$pids" ] && kill -9 $pids 2>/dev/null; done; sleep 0.3; return 0; }

echo "scenario,hosts,image_bytes,rate,mean_s,p50_s,max_s,upstream_bytes,upstream_over_image,failed,cpu_busy" > "$CSV"
for scenario in ${SCENARIOS//,/ }; do
    log "=== $scenario: $HOSTS hosts pull $IMAGE_BYTES bytes over $RATE links"
    restart_upstream
    mirror=-
    case "$scenario" in
        direct) ;;
        cache)
            registry_config "$LAB/cache.yml" "$CACHE_IP:5000" "$LAB/cache-store" "http://$UPSTREAM"
            ip netns exec $PREFIX-c docker-registry serve "$LAB/cache.yml" > "$LAB/cache.log" 2>&1 & disown
            wait_http $PREFIX-c "http://$CACHE_IP:5000/v2/"
            mirror="http://$CACHE_IP:5000" ;;
        swarm|preheat)
            if [ "$scenario" = preheat ]; then
                log "preheat: swarm seed oci://$IMAGE on the seed host (not timed)"
                registries_json "$LAB/seed-$scenario"
                ip netns exec $PREFIX-s $SWARM seed "oci://$IMAGE" --data-dir "$LAB/seed-$scenario" --listen "$SEED_IP:7400" > "$LAB/seed.out" 2> "$LAB/seed.err" & disown
                for _ in $(seq 1 600); do grep -q '^sha256:' "$LAB/seed.out" 2>/dev/null && break; sleep 0.2; done
                grep -q '^sha256:' "$LAB/seed.out" || { echo "run.sh: the seed did not finish:" >&2; tail -5 "$LAB/seed.err" >&2; exit 1; }
                log "preheat: the seed serves $(cat "$LAB/seed.out"); $(tr '\r' '\n' < "$LAB/seed.err" | grep -c . ) lines of log"
                cp "$LAB/seed.err" "$OUT/seed-$scenario.log" 
            else
                ip netns exec $PREFIX-s $SWARM node --data-dir "$LAB/seed-$scenario" --listen "$SEED_IP:7400" --mirror off --metrics off > "$LAB/boot.log" 2>&1 & disown
                for _ in $(seq 1 100); do grep -q 'ready: control socket' "$LAB/boot.log" 2>/dev/null && break; sleep 0.2; done
            fi
            for i in $(seq 1 "$HOSTS"); do
                registries_json "$LAB/h$i/node-$scenario"
                ip netns exec "$PREFIX-h$i" $SWARM node --data-dir "$LAB/h$i/node-$scenario" --listen "$NET.1.$i:7400" --bootstrap "$SEED_IP:7400" \
                    --mirror 127.0.0.1:7401 --upstream "$UPSTREAM" --metrics off > "$LAB/h$i/node-$scenario.log" 2>&1 & disown
            done
            for i in $(seq 1 "$HOSTS"); do
                for _ in $(seq 1 150); do grep -q 'ready: control socket' "$LAB/h$i/node-$scenario.log" 2>/dev/null && break; sleep 0.2; done
            done
            mirror="http://127.0.0.1:7401" ;;
        *) echo "run.sh: unknown scenario '$scenario'" >&2; exit 1 ;;
    esac
    start_containerds "$scenario" "$mirror"
    before=$(origin_tx)
    cpu_start
    ip netns exec $PREFIX-hub python3 "$REPO/bench/swarm-lab/timeline.py" "$OUT/timeline-$scenario.csv" "$RATE_BITS" o,c,s &
    TIMELINE_PID=$!
    mapfile -t times < <(pull_all "$scenario")
    kill "$TIMELINE_PID" 2>/dev/null || true
    cpu=$(cpu_stop)
    after=$(origin_tx)
    failed=0
    for i in $(seq 1 "$HOSTS"); do
        if [ "${times[$((i-1))]}" = nan ]; then failed=$((failed+1)); log "h$i failed:"; tail -3 "$LAB/h$i/$scenario/pull.log" >&2; fi
        mkdir -p "$OUT/logs-$scenario"
        cp "$LAB/h$i/$scenario/pull.log" "$OUT/logs-$scenario/h$i-pull.log" 2>/dev/null || true
        cp "$LAB/h$i/node-$scenario.log" "$OUT/logs-$scenario/h$i-node.log" 2>/dev/null || true
    done
    { echo "host,seconds"; for i in "${!times[@]}"; do echo "h$((i + 1)),${times[$i]}"; done; } > "$OUT/hosts-$scenario.csv"
    python3 - "$scenario" "$HOSTS" "$IMAGE_BYTES" "$RATE" "$((after - before))" "$failed" "${cpu%% *}" "${times[@]}" <<'EOF' | tee -a "$CSV"
import sys, statistics, math
scenario, n, size, rate, up, failed, cpu = sys.argv[1:8]
t = [float(x) for x in sys.argv[8:]]
ok = [x for x in t if not math.isnan(x)]
mean = statistics.mean(ok) if ok else float("nan")
p50 = statistics.median(ok) if ok else float("nan")
mx = max(ok) if ok else float("nan")
print(f"{scenario},{n},{size},{rate},{mean:.2f},{p50:.2f},{mx:.2f},{up},{int(up)/int(size):.3f},{failed},{cpu}")
EOF
    # containerd and the nodes of this scenario go; the next one starts from nothing.
    for i in $(seq 1 "$HOSTS"); do stop_in "h$i"; done
    stop_in c s
done
python3 - "$CSV" "$RATE_BITS" "$IMAGE_BYTES" "$HOSTS" > "$OUT/table.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rate, size, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ideal = size * 8 / rate
names = {"direct": "straight from the upstream", "cache": "docker-registry pull-through cache", "swarm": "Swarm (cold, no preheat)", "preheat": "Swarm after `swarm seed oci://`"}
print(f"| {n} hosts pull {size / 2**20:.0f} MiB at once | mean pull | slowest pull | slowest / one pull alone ({ideal:.1f} s) | upstream sent | CPU busy |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| {names.get(r['scenario'], r['scenario'])} | {float(r['mean_s']):.1f} s | {float(r['max_s']):.1f} s | {float(r['max_s']) / ideal:.2f}x | {float(r['upstream_over_image']):.2f}x the image | {r['cpu_busy']} |"
          + (f" ({r['failed']} failed)" if r['failed'] != '0' else ""))
EOF
log "results: $CSV, $OUT/table.md"
cat "$OUT/table.md"
