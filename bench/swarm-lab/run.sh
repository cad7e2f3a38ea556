#!/usr/bin/env bash
# The swarm lab: N hosts in network namespaces behind one bridge, every link shaped with tc tbf, an origin host
# serving the file with nginx. For each N it runs, in one go:
#   curl  - every host fetches from the origin at the same moment (skipped above --curl-max-hosts)
#   seed  - every host runs `swarm get URL` at the same moment, against `swarm seed URL` on the origin host
#   cold  - every host runs `swarm get URL` at the same moment with no seed (only a DHT node on the origin host)
#   libtorrent - the BitTorrent baseline (not in the default set): every host runs a libtorrent-rasterbar client
#           (Debian's python3-libtorrent, bench/swarm-lab/lt_client.py) at the same moment, against a libtorrent seed
#           and opentracker on the origin host (a torrent of 1 MiB pieces made with mktorrent; TCP only)
# and records per-host completion times (when the output file appears), the origin's bytes sent (its interface
# counter), CPU use (/proc/stat), and the ratio of the last completion to the Kumar-Ross bound
# max(S/u_origin, S/d, N*S/(u_origin + N*u)). Run as root. Everything it makes is removed on exit, also on Ctrl-C.
#
#   bench/swarm-lab/run.sh --hosts 12 --size 256MiB --rate 50mbit
#   bench/swarm-lab/run.sh --hosts 2,4,8,12 --size 256MiB --rate 50mbit --curl-max-hosts 4   # the README plot
set -euo pipefail

HOSTS="12"; SIZE="256MiB"; RATE="50mbit"; ORIGIN_RATE=""; CURL_MAX=1000000; SCENARIOS="curl,seed,cold"; OUT=""; SWARM_KEY=0; ENCRYPTION=on
usage() {
    cat <<EOF
usage: $0 [--hosts N[,N...]] [--size SIZE] [--rate RATE] [--origin-rate RATE] [--curl-max-hosts N] [--scenarios curl,seed,cold] [--out DIR]
  --hosts           host counts to run (default 12)
  --size            file size: 64MiB, 256MiB, 1GiB ... (default 256MiB)
  --rate            every host link, both ways, as tc understands it: 50mbit, 100mbit (default 50mbit)
  --origin-rate     the origin host's link (default: --rate)
  --curl-max-hosts  run the curl scenario only up to this many hosts (it takes N x S / u_origin)
  --scenarios       which scenarios to run (default curl,seed,cold; libtorrent adds the BitTorrent baseline,
                    installing python3-libtorrent, opentracker and mktorrent with apt-get when missing)
  --out             results directory (default bench/results/lab-<time>)
  --swarm-key       a private swarm: one key (swarm keygen) for every node, through SWARM_SWARM_KEY
  --peer-encryption on (default) or off, through SWARM_PEER_ENCRYPTION
  SWARM_LAB_GET_ARGS (environment): more arguments for every host's `swarm get`, e.g. -v for timed debug logs
EOF
}
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) HOSTS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --origin-rate) ORIGIN_RATE="$2"; shift 2 ;;
        --curl-max-hosts) CURL_MAX="$2"; shift 2 ;;
        --skip-curl) SCENARIOS="seed,cold"; shift ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --swarm-key) SWARM_KEY=1; shift ;;
        --peer-encryption) ENCRYPTION="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 1 ;;
    esac
done
ORIGIN_RATE="${ORIGIN_RATE:-$RATE}"
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces, tc)" >&2; exit 1; }
for tool in ip tc nginx curl dotnet python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is missing (apt-get install -y iproute2 nginx curl python3; dotnet from the README)" >&2; exit 1; }
done

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ ",$SCENARIOS," == *,libtorrent,* ]]; then
    if ! /usr/bin/python3 -c 'import libtorrent' 2>/dev/null || ! command -v opentracker >/dev/null || ! command -v mktorrent >/dev/null; then
        echo "run.sh: installing the BitTorrent baseline (apt-get install python3-libtorrent opentracker mktorrent)" >&2
        # A policy-rc.d keeps opentracker's own service from starting where systemd runs (one already there is kept).
        policy_rc=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy_rc=1
        fi
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-libtorrent opentracker mktorrent >/dev/null || rc=$?
        [ -z "$policy_rc" ] || rm -f /usr/sbin/policy-rc.d
        [ "$rc" = 0 ] || { echo "run.sh: apt-get install python3-libtorrent opentracker mktorrent failed" >&2; exit 1; }
    fi
fi
source "$REPO/bench/lab-lib.sh"
SIZE_BYTES=$(to_bytes "$SIZE")
RATE_BITS=$(to_bits "$RATE")
ORIGIN_BITS=$(to_bits "$ORIGIN_RATE")
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="${OUT:-$REPO/bench/results/lab-$STAMP}"
mkdir -p "$OUT"
CSV="$OUT/lab.csv"
LAB=/tmp/swarm-lab
SWARM="${SWARM_CMD:-dotnet /tmp/swarm-lab-bin/swarm.dll}"
PREFIX=sl                       # namespace names: sl-hub, sl-o, sl-h1 ...
NET=10.77                       # 10.77.0.1 origin, 10.77.1.i hosts
ORIGIN_IP=$NET.0.1
URL="http://$ORIGIN_IP:8080/file.bin"

log() { echo "[lab $(date +%H:%M:%S)] $*" >&2; }

install_cleanup

BIN=/tmp/swarm-lab-bin
setup_lab() {
    local n=$1
    cleanup; set -e
    mkdir -p "$LAB/www"
    ip route add unreachable $NET.0.0/16   # nothing addressed to the lab may leave through the default route
    make_hub
    make_host o "$ORIGIN_IP" "$ORIGIN_BITS"
    for i in $(seq 1 "$n"); do make_host "h$i" "$NET.1.$i" "$RATE_BITS"; done
    log "making the $SIZE file"
    head -c "$SIZE_BYTES" /dev/urandom > "$LAB/www/file.bin"
    cat > "$LAB/nginx.conf" <<EOF
daemon on; user root; worker_processes 1; pid $LAB/nginx.pid; error_log $LAB/nginx.err;
events {}
http { access_log off; sendfile on; server { listen $ORIGIN_IP:8080; root $LAB/www; } }
EOF
    ip netns exec $PREFIX-o nginx -c "$LAB/nginx.conf"
    ip netns exec $PREFIX-h1 curl -sf -o /dev/null -r 0-0 "$URL" || { echo "run.sh: the origin does not answer inside the lab" >&2; exit 1; }
}

# The BitTorrent baseline's origin: a torrent of the file (1 MiB pieces), opentracker (Debian's whitelist-only build:
# the info hash goes in its whitelist; it drops root and chroots to its directory) and a libtorrent seed, all on the
# origin host; returns once the seed's first announce has been answered.
start_libtorrent_seed() {
    rm -rf "$LAB/lt"; mkdir -p "$LAB/lt/seed" "$LAB/lt/tracker"
    ln "$LAB/www/file.bin" "$LAB/lt/seed/file.bin"
    mktorrent -l 20 -a "http://$ORIGIN_IP:6969/announce" -o "$LAB/lt/file.torrent" "$LAB/lt/seed/file.bin" >/dev/null
    /usr/bin/python3 -c "import libtorrent as lt, sys; print(lt.torrent_info(sys.argv[1]).info_hash())" "$LAB/lt/file.torrent" > "$LAB/lt/tracker/whitelist.txt"
    chmod 755 "$LAB/lt" "$LAB/lt/tracker"; chmod 644 "$LAB/lt/tracker/whitelist.txt"
    printf 'access.whitelist /whitelist.txt\ntracker.rootdir %s\ntracker.user _opentracker\n' "$LAB/lt/tracker" > "$LAB/lt/tracker.conf"
    ip netns exec $PREFIX-o opentracker -f "$LAB/lt/tracker.conf" -i "$ORIGIN_IP" -p 6969 -P 6969 > "$LAB/lt/tracker.log" 2>&1 &
    ip netns exec $PREFIX-o /usr/bin/python3 "$REPO/bench/swarm-lab/lt_client.py" "$LAB/lt/file.torrent" "$LAB/lt/seed" "$ORIGIN_IP" --seed \
        > "$LAB/lt/seed.out" 2> "$LAB/lt/seed.err" &
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q '^seeding' "$LAB/lt/seed.out" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "run.sh: the libtorrent seed was not announced within 60 s; tracker: $(tail -3 "$LAB/lt/tracker.log"); seed: $(tail -3 "$LAB/lt/seed.err")" >&2
    exit 1
}

origin_tx() { ip netns exec $PREFIX-o cat /sys/class/net/eth0/statistics/tx_bytes; }

# run_hosts N KIND: starts the fetch on every host at the same moment; prints each host's completion time (s).
run_hosts() {
    local n=$1 kind=$2
    rm -rf "$LAB/hosts"; mkdir -p "$LAB/hosts"
    local t0; t0=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        local dir="$LAB/hosts/h$i"; mkdir -p "$dir"
        local cmd
        if [ "$kind" = curl ]; then
            cmd="curl -sf -o $dir/out.tmp $URL && mv $dir/out.tmp $dir/out"
        elif [ "$kind" = libtorrent ]; then
            mkdir -p "$dir/lt"
            cmd="exec /usr/bin/python3 $REPO/bench/swarm-lab/lt_client.py $LAB/lt/file.torrent $dir/lt $NET.1.$i --out $dir/out"
        else
            cmd="exec $SWARM get $URL -o $dir/out --data-dir $dir/data --bootstrap $ORIGIN_IP:7400 --listen $NET.1.$i:7400 ${SWARM_LAB_GET_ARGS:-}"
        fi
        ip netns exec "$PREFIX-h$i" bash -c "$cmd" > "$dir/stdout" 2> "$dir/stderr" &
        echo $! > "$dir/pid"
    done
    local dirs=(); for i in $(seq 1 "$n"); do dirs+=("$LAB/hosts/h$i"); done
    python3 "$REPO/bench/swarm-lab/watch.py" "$t0" 1800 "${dirs[@]}" > "$LAB/watch.out"
    grep '^ticks ' "$LAB/watch.out" | cut -d' ' -f2 > "$LAB/proc.ticks"
    local k=0
    while read -r t; do
        k=$((k+1))
        local d="$LAB/hosts/h$k"
        if [ "$t" != nan ] && cmp -s "$d/out" "$LAB/www/file.bin"; then echo "$t"; else
            echo "host h$k failed ($kind); its stderr:" >&2; tail -5 "$d/stderr" >&2; echo "nan"; fi
    done < <(grep -v '^ticks ' "$LAB/watch.out")
    # Stop what still runs (gets that keep serving their peers) before the next scenario.
    for i in $(seq 1 "$n"); do pkill -9 -P "$(cat "$LAB/hosts/h$i/pid")" 2>/dev/null || true; kill -9 "$(cat "$LAB/hosts/h$i/pid")" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

bound() { python3 -c "
S=$SIZE_BYTES*8; N=$1; u=$RATE_BITS; d=$RATE_BITS; uo=$ORIGIN_BITS
print(f'{max(S/uo, S/d, N*S/(uo+N*u)):.3f}')"; }

summarize() { # kind n bound cpu origin_bytes times...
    local kind=$1 n=$2 b=$3 cpu=$4 obytes=$5; shift 5
    python3 - "$kind" "$n" "$b" "$cpu" "$obytes" "$SIZE_BYTES" "$RATE" "$@" <<'EOF' | tee -a "$CSV"
import os, sys, statistics, math
kind, n, b, cpu, ob, S, rate = sys.argv[1:8]
fetch_cpu = os.environ.get("FETCH_CPU", "")
t=[float(x) for x in sys.argv[8:]]
ok=[x for x in t if not math.isnan(x)]
b=float(b); ob=int(ob); S=int(S); avg,p90,user,system,softirq=cpu.split()
p50=statistics.median(ok) if ok else float('nan'); p100=max(ok) if ok else float('nan')
failed=len(t)-len(ok)
print(f"{kind},{n},{S},{rate},{p50:.2f},{p100:.2f},{b:.2f},{p100/b:.3f},{ob},{ob/S:.3f},{avg},{p90},{user},{system},{softirq},{failed},{fetch_cpu}")
EOF
    local avg=${cpu%% *}
    if python3 -c "import sys; sys.exit(0 if float('$avg') > 0.85 else 1)"; then
        log "WARNING: $kind with $n hosts used ${avg} of both cores on average: CPU-bound, not network-bound; the times overstate the network cost"
    fi
}

publish_swarm
export SWARM_PEER_ENCRYPTION="$ENCRYPTION"
if [ "$SWARM_KEY" = 1 ]; then
    rm -rf /tmp/swarm-lab-key && mkdir -p /tmp/swarm-lab-key
    $SWARM keygen /tmp/swarm-lab-key/swarm.key >/dev/null || { echo "run.sh: swarm keygen failed" >&2; exit 1; }
    export SWARM_SWARM_KEY=/tmp/swarm-lab-key/swarm.key
fi
log "peer encryption $ENCRYPTION, swarm key $([ "$SWARM_KEY" = 1 ] && echo on || echo off)"
echo "swarm_key=$SWARM_KEY peer_encryption=$ENCRYPTION" > "$OUT/security.txt"
echo "scenario,hosts,size_bytes,rate,p50_s,p100_s,bound_s,p100_over_bound,origin_bytes,origin_over_size,cpu_busy,cpu_busy_p90,cpu_user,cpu_system,cpu_softirq,failed,fetch_cpu_s" > "$CSV"
IFS=, read -r -a NS <<< "$HOSTS"
for n in "${NS[@]}"; do
    log "=== $n hosts, $SIZE, links $RATE (origin $ORIGIN_RATE)"
    setup_lab "$n"
    b=$(bound "$n")
    log "Kumar-Ross bound: $b s"
    for kind in ${SCENARIOS//,/ }; do
        if [ "$kind" = curl ] && [ "$n" -gt "$CURL_MAX" ]; then log "curl: skipped (more than --curl-max-hosts $CURL_MAX)"; continue; fi
        rm -rf "$LAB/origin-node"
        if [ "$kind" = seed ]; then
            log "seed: ingesting on the origin host (not counted)"
            ip netns exec $PREFIX-o $SWARM seed "$URL" --data-dir "$LAB/origin-node" --listen "$ORIGIN_IP:7400" > "$LAB/seed.out" 2> "$LAB/seed.err" &
            until grep -q '^swarm://' "$LAB/seed.out" 2>/dev/null; do sleep 0.2; done
        elif [ "$kind" = libtorrent ]; then
            start_libtorrent_seed
        elif [ "$kind" = cold ]; then
            ip netns exec $PREFIX-o $SWARM node --data-dir "$LAB/origin-node" --listen "$ORIGIN_IP:7400" > "$LAB/node.out" 2> "$LAB/node.err" &
            until grep -q 'listening on' "$LAB/node.err" 2>/dev/null; do sleep 0.2; done
        fi
        before=$(origin_tx)
        cpu_start
        ip netns exec $PREFIX-hub python3 "$REPO/bench/swarm-lab/timeline.py" "$OUT/timeline-$kind-$n.csv" "$RATE_BITS" &
        TIMELINE_PID=$!
        log "$kind: $n hosts start"
        mapfile -t times < <(run_hosts "$n" "$kind")
        kill "$TIMELINE_PID" 2>/dev/null || true
        cpu=$(cpu_stop)
        after=$(origin_tx)
        # CPU-seconds of the fetching processes (for curl, the shell around it is what was measured: left empty).
        FETCH_CPU=""
        [ "$kind" = curl ] || FETCH_CPU=$(python3 -c "print(round($(cat "$LAB/proc.ticks") / $(getconf CLK_TCK), 1))")
        FETCH_CPU=$FETCH_CPU summarize "$kind" "$n" "$b" "$cpu" "$((after - before))" "${times[@]}"
        # Per-host completion times and each host's stderr, for a look at the slowest.
        { echo "host,seconds"; for i in "${!times[@]}"; do echo "h$((i + 1)),${times[$i]}"; done; } > "$OUT/hosts-$kind-$n.csv"
        mkdir -p "$OUT/logs-$kind-$n"
        for i in $(seq 1 "$n"); do cp "$LAB/hosts/h$i/stderr" "$OUT/logs-$kind-$n/h$i.log" 2>/dev/null || true; done
        [ "$kind" = curl ] || log "$kind: the $n fetching processes used $FETCH_CPU CPU seconds in all (this machine has $(nproc) cores)"
        for p in $(ip netns pids $PREFIX-o); do
            case "$(cat /proc/"$p"/comm 2>/dev/null)" in dotnet|swarm|opentracker|python3) kill -9 "$p" 2>/dev/null || true ;; esac
        done
        sleep 0.5
    done
done
python3 "$REPO/bench/swarm-lab/plot.py" "$CSV" "$OUT/lab.svg"
log "results: $CSV and $OUT/lab.svg"
column -s, -t < "$CSV"
