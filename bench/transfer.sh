#!/usr/bin/env bash
# Transfer benchmark on loopback: a two-node Swarm transfer against plain reference points.
#
#   sudo bench/transfer.sh [--size 1GiB] [--runs 3] [--tmp DIR]
#
# In one run it:
#   1. publishes the CLI as deployed (dotnet publish Swarm.Cli -c Release -r linux-x64 -p:PublishReadyToRun=true, as the
#      lab does and README's one-executable recipe) into its temp dir and uses that swarm;
#   2. writes a random file of --size bytes (default 1GiB; units B, KiB, MiB, GiB, KB, MB, GB, or plain bytes);
#   3. starts two `swarm seed`s of the file (peer encryption on, the default, and --peer-encryption off) on free 127.0.0.1
#      ports with their own data dirs, and Debian's nginx (installed with apt-get
#      if missing) on another free 127.0.0.1 port with its own minimal config (sendfile on), not the system service;
#   4. measures, --runs times each, interleaved (swarm, curl, openssl, swarm, ...):
#        (a) `swarm get` with a fresh data dir (wall time, and peak RSS through /usr/bin/time -v), encrypted (the default)
#            and plaintext (--peer-encryption off, from the other seed),
#        (b) `curl -o` of the same file from that nginx,
#        (c) `openssl dgst -sha256` of the file from the page cache;
#      before every timed step the previous outputs are deleted and `sync` runs, because dirty-page writeback of the
#      previous GiB otherwise makes the next write up to 3x slower. Every output is compared with the source (cmp);
#   5. prints the medians as a table (MB/s = 10^6 bytes/s; CPU seconds of client + server; Swarm's ratio to
#      min(curl, openssl); peak RSS of `swarm get` in MB = 10^6 bytes; the load average, since other load on the machine
#      skews everything) and writes the same to bench/results/transfer-<date>.csv.
# Exits non-zero when any step fails. Everything it started is stopped and its temp dir removed on exit, error,
# Ctrl-C or SIGTERM. Only 127.0.0.1 is used. Run as root (apt-get) on Debian 12.
set -Eeuo pipefail
export LC_ALL=C

SIZE_ARG=1GiB
RUNS=3
TMP_PARENT=${TMPDIR:-/var/tmp}

usage() { sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --size) SIZE_ARG=${2:?--size needs a value}; shift 2 ;;
        --size=*) SIZE_ARG=${1#*=}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --tmp) TMP_PARENT=${2:?--tmp needs a directory}; shift 2 ;;
        --tmp=*) TMP_PARENT=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "transfer.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

parse_size() {
    local s=${1// /} n unit
    [[ $s =~ ^([0-9]+)([A-Za-z]*)$ ]] || return 1
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2],,}
    case $unit in
        ''|b) echo "$n" ;;
        k|kib) echo $((n * 1024)) ;;
        m|mib) echo $((n * 1024 * 1024)) ;;
        g|gib) echo $((n * 1024 * 1024 * 1024)) ;;
        kb) echo $((n * 1000)) ;;
        mb) echo $((n * 1000 * 1000)) ;;
        gb) echo $((n * 1000 * 1000 * 1000)) ;;
        *) return 1 ;;
    esac
}

SIZE=$(parse_size "$SIZE_ARG") || { echo "transfer.sh: --size '$SIZE_ARG' is not a size (e.g. 1GiB, 256MiB, 1000000)" >&2; exit 2; }
[[ $SIZE -gt 0 ]] || { echo "transfer.sh: --size must be more than 0 bytes" >&2; exit 2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "transfer.sh: --runs must be a positive integer" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SWARM=""  # set after the publish, inside the temp dir
RESULTS_DIR=$ROOT/bench/results

# ---- state for cleanup ----------------------------------------------------------------------------------------------
WORK=""
SEED_PID=""
PLAIN_PID=""
NGINX_PID=""
CHILD_PID=""
POLICY_RC_CREATED=""

# True while a process group has a member that is not a zombie.
group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }

# Stops a process group that we started with setsid (its leader's pid is the group id): SIGTERM to the whole group
# (the leader and e.g. nginx's workers or the command under /usr/bin/time), SIGKILL for what is left after 10 s.
stop_group() {
    local pid=$1 what=$2 i
    [[ -n $pid ]] || return 0
    if group_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            group_alive "$pid" || break
            sleep 0.1
        done
        if group_alive "$pid"; then
            log "$what (process group $pid) ignored SIGTERM for 10 s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do group_alive "$pid" || break; sleep 0.1; done
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM ERR
    set +e
    stop_group "$CHILD_PID" "timed command"
    stop_group "$SEED_PID" "swarm seed"
    stop_group "$PLAIN_PID" "swarm seed (plaintext)"
    stop_group "$NGINX_PID" "nginx"
    [[ -n $POLICY_RC_CREATED ]] && rm -f /usr/sbin/policy-rc.d
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    for pid in $CHILD_PID $SEED_PID $PLAIN_PID $NGINX_PID; do
        if group_alive "$pid"; then
            log "warning: processes of group $pid are still running"
            [[ $rc -ne 0 ]] || rc=1
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---- prerequisites --------------------------------------------------------------------------------------------------
apt_updated=""
apt_install() {
    [[ $(id -u) -eq 0 ]] || die "need root to install $* (apt-get install $*)"
    local pkg
    for pkg in "$@"; do
        if [[ -z $apt_updated ]] && ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            log "apt-get update"
            apt-get update -qq || die "apt-get update"
            apt_updated=1
        fi
    done
    # Keep the package's own service from starting (we run our own nginx on 127.0.0.1 only).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $*"
    if [[ -n $POLICY_RC_CREATED ]]; then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=""; fi
}

missing=()
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v ss >/dev/null || missing+=(iproute2)
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
command -v dotnet >/dev/null || die "dotnet is not on PATH"

mkdir -p "$TMP_PARENT"
WORK=$(mktemp -d "$TMP_PARENT/swarm-transfer.XXXXXX")
avail=$(df -PB1 "$WORK" | awk 'NR==2 {print $4}')
need=$((SIZE * 4 + 512 * 1024 * 1024)) # source, seed's store, one swarm output, one curl output
[[ $avail -ge $need ]] || die "$WORK has $((avail / 1048576)) MiB free; this run needs about $((need / 1048576)) MiB"

# ---- helpers --------------------------------------------------------------------------------------------------------
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 40000))
        if [[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]]; then echo "$port"; return 0; fi
    done
    return 1
}

now_ns() { date +%s%N; }

# Runs a command in its own process group (so an interrupt can stop it whole) under /usr/bin/time -v and waits for it.
# Sets ELAPSED (wall seconds), CPU (its user + system seconds) and RSS_KB (peak RSS); output goes to $1.out, $1.err and
# $1.time. Returns the command's exit status.
timed() {
    local prefix=$1 t0 t1 rc=0
    shift
    t0=$(now_ns)
    setsid /usr/bin/time -v -o "$prefix.time" "$@" >"$prefix.out" 2>"$prefix.err" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    t1=$(now_ns)
    CHILD_PID=""
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$prefix.time" 2>/dev/null || true)
    CPU=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$prefix.time" 2>/dev/null || echo 0)
    return "$rc"
}

show_failure() {
    local prefix=$1
    for f in "$prefix.err" "$prefix.out" "$prefix.time"; do
        [[ -s $f ]] && { echo "--- $(basename "$f") (last lines)" >&2; tail -n 15 "$f" >&2; }
    done
    return 0
}

# CPU seconds (user + system) used so far by the live processes of a process group (the seed, nginx and its worker).
CLK_TCK=$(getconf CLK_TCK)
group_cpu() {
    local p
    for p in $(pgrep -g "$1"); do
        # Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
        sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }'
    done | awk -v hz="$CLK_TCK" '{ t += $1 } END { printf "%.2f", t / hz }'
}
cpu_add() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { printf "%.2f", a + (c - b) }'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mbps() { awk -v s="$SIZE" -v t="$1" 'BEGIN { printf "%.1f", s / t / 1e6 }'; }

# Deletes every output of earlier steps, then flushes dirty pages, so no step pays for the previous one's writeback.
settle() {
    rm -rf -- "$WORK/get-data" "$WORK/swarm.out.bin" "$WORK/curl.out.bin"
    sync
}

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)

# ---- build ----------------------------------------------------------------------------------------------------------
log "publishing Swarm.Cli (Release, ReadyToRun, as deployed)"
SWARM=$WORK/bin/swarm
if ! (cd "$ROOT" && DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 dotnet publish Swarm.Cli/Swarm.Cli.csproj -c Release -r linux-x64 \
        --self-contained false -p:PublishReadyToRun=true -o "$WORK/bin" -nologo -v quiet --disable-build-servers) >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    die "dotnet publish Swarm.Cli -c Release -r linux-x64 -p:PublishReadyToRun=true"
fi
[[ -x $SWARM ]] || die "publish succeeded but $SWARM is missing"

# ---- source file ----------------------------------------------------------------------------------------------------
SRC=$WORK/www/payload.bin
mkdir -p "$WORK/www"
log "writing $SIZE random bytes to $SRC"
head -c "$SIZE" /dev/urandom >"$SRC" || die "cannot write $SRC"
[[ $(stat -c %s "$SRC") -eq $SIZE ]] || die "$SRC has the wrong size"
sync
cat "$SRC" >/dev/null # into the page cache: every reader below reads it from memory

# ---- seeds ----------------------------------------------------------------------------------------------------------
# Two seeds of the same file: one with peer encryption on (the default), one with it off, so one run measures
# what encryption costs. Sets SEED_ID; the caller records the pid ($!).
wait_for_id() {
    local prefix=$1 pid=$2 deadline=$((SECONDS + 600))
    SEED_ID=""
    while [[ -z $SEED_ID ]]; do
        SEED_ID=$(grep -m1 -o 'swarm://[0-9a-fA-F]\{64\}' "$prefix.out" 2>/dev/null || true)
        [[ -n $SEED_ID ]] && break
        kill -0 "$pid" 2>/dev/null || { show_failure "$prefix"; die "swarm seed exited before printing its id"; }
        [[ $SECONDS -lt $deadline ]] || { show_failure "$prefix"; die "swarm seed printed no id within 600 s"; }
        sleep 0.2
    done
}
SEED_PORT=$(free_port) || die "no free port for the seed"
log "starting swarm seed on 127.0.0.1:$SEED_PORT (ingests the file first)"
setsid "$SWARM" seed "$SRC" --data-dir "$WORK/seed-data" --listen "127.0.0.1:$SEED_PORT" >"$WORK/seed.out" 2>"$WORK/seed.err" &
SEED_PID=$!
wait_for_id "$WORK/seed" "$SEED_PID"
ID=$SEED_ID
log "seeding $ID"
PLAIN_PORT=$(free_port) || die "no free port for the plaintext seed"
while [[ $PLAIN_PORT == "$SEED_PORT" ]]; do PLAIN_PORT=$(free_port) || die "no free port for the plaintext seed"; done
log "starting swarm seed --peer-encryption off on 127.0.0.1:$PLAIN_PORT"
setsid "$SWARM" seed "$SRC" --data-dir "$WORK/plain-data" --listen "127.0.0.1:$PLAIN_PORT" --peer-encryption off >"$WORK/plain.out" 2>"$WORK/plain.err" &
PLAIN_PID=$!
wait_for_id "$WORK/plain" "$PLAIN_PID"
PLAIN_ID=$SEED_ID # another id for the same bytes: a content id names its ingester's key too

# ---- nginx ----------------------------------------------------------------------------------------------------------
NGINX_PORT=$(free_port) || die "no free port for nginx"
while [[ $NGINX_PORT == "$SEED_PORT" ]]; do NGINX_PORT=$(free_port) || die "no free port for nginx"; done
mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
# Minimal static server for the benchmark; everything it writes stays in $WORK/nginx.
daemon off;
master_process on;
worker_processes 1;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/tmp/client;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
    }
}
EOF
/usr/sbin/nginx -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/test.log" \
    || { cat "$WORK/nginx/test.log" >&2; die "nginx rejected its config"; }
log "starting nginx on 127.0.0.1:$NGINX_PORT"
setsid /usr/sbin/nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
URL=http://127.0.0.1:$NGINX_PORT/payload.bin
for ((i = 0; ; i++)); do
    curl -sf -o /dev/null -r 0-0 "$URL" && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx/error.log" "$WORK/nginx/stdout.log" >&2 2>/dev/null; die "nginx exited"; }
    [[ $i -lt 100 ]] || die "nginx did not answer on $URL within 10 s"
    sleep 0.1
done

# ---- measurements ---------------------------------------------------------------------------------------------------
declare -a T_SWARM=() T_PLAIN=() T_CURL=() T_SSL=() RSS_SWARM=() C_SWARM=() C_PLAIN=() C_CURL=() C_SSL=()
EXPECTED_DIGEST=""
for ((run = 1; run <= RUNS; run++)); do
    settle
    log "run $run/$RUNS: swarm get"
    mkdir -p "$WORK/get-data"
    server_before=$(group_cpu "$SEED_PID")
    if ! timed "$WORK/get" "$SWARM" get "$ID" --peer "127.0.0.1:$SEED_PORT" -o "$WORK/swarm.out.bin" --data-dir "$WORK/get-data"; then
        show_failure "$WORK/get"; show_failure "$WORK/seed"; die "swarm get (run $run)"
    fi
    [[ -n $RSS_KB ]] || die "no peak RSS from /usr/bin/time for swarm get"
    cmp "$SRC" "$WORK/swarm.out.bin" || die "swarm get output differs from the source (run $run)"
    T_SWARM+=("$ELAPSED"); RSS_SWARM+=("$RSS_KB"); C_SWARM+=("$(cpu_add "$CPU" "$server_before" "$(group_cpu "$SEED_PID")")")
    log "  $ELAPSED s, $(mbps "$ELAPSED") MB/s, CPU ${C_SWARM[-1]} s (get $CPU s + seed), peak RSS $((RSS_KB / 1024)) MiB: $(tail -n 1 "$WORK/get.err")"

    settle
    log "run $run/$RUNS: swarm get --peer-encryption off"
    mkdir -p "$WORK/get-data"
    server_before=$(group_cpu "$PLAIN_PID")
    if ! timed "$WORK/plainget" "$SWARM" get "$PLAIN_ID" --peer "127.0.0.1:$PLAIN_PORT" -o "$WORK/swarm.out.bin" --data-dir "$WORK/get-data" --peer-encryption off; then
        show_failure "$WORK/plainget"; show_failure "$WORK/plain"; die "swarm get --peer-encryption off (run $run)"
    fi
    cmp "$SRC" "$WORK/swarm.out.bin" || die "plaintext swarm get output differs from the source (run $run)"
    T_PLAIN+=("$ELAPSED"); C_PLAIN+=("$(cpu_add "$CPU" "$server_before" "$(group_cpu "$PLAIN_PID")")")
    log "  $ELAPSED s, $(mbps "$ELAPSED") MB/s, CPU ${C_PLAIN[-1]} s (get $CPU s + seed)"

    settle
    log "run $run/$RUNS: curl from nginx"
    server_before=$(group_cpu "$NGINX_PID")
    if ! timed "$WORK/curl" curl -sS -f -o "$WORK/curl.out.bin" "$URL"; then
        show_failure "$WORK/curl"; die "curl (run $run)"
    fi
    cmp "$SRC" "$WORK/curl.out.bin" || die "curl output differs from the source (run $run)"
    T_CURL+=("$ELAPSED"); C_CURL+=("$(cpu_add "$CPU" "$server_before" "$(group_cpu "$NGINX_PID")")")
    log "  $ELAPSED s, $(mbps "$ELAPSED") MB/s, CPU ${C_CURL[-1]} s (curl $CPU s + nginx)"

    settle
    log "run $run/$RUNS: openssl dgst -sha256"
    if ! timed "$WORK/openssl" openssl dgst -sha256 "$SRC"; then
        show_failure "$WORK/openssl"; die "openssl dgst (run $run)"
    fi
    digest=$(awk '{print $NF}' "$WORK/openssl.out")
    [[ $digest =~ ^[0-9a-f]{64}$ ]] || die "openssl printed no digest: $(cat "$WORK/openssl.out")"
    [[ -z $EXPECTED_DIGEST || $digest == "$EXPECTED_DIGEST" ]] || die "openssl digest changed between runs"
    EXPECTED_DIGEST=$digest
    T_SSL+=("$ELAPSED"); C_SSL+=("$CPU")
    log "  $ELAPSED s, $(mbps "$ELAPSED") MB/s, CPU $CPU s"
done
settle

kill -0 "$SEED_PID" 2>/dev/null || { show_failure "$WORK/seed"; die "swarm seed died during the runs"; }
kill -0 "$PLAIN_PID" 2>/dev/null || { show_failure "$WORK/plain"; die "swarm seed (plaintext) died during the runs"; }

# ---- results --------------------------------------------------------------------------------------------------------
M_SWARM=$(median "${T_SWARM[@]}"); M_CURL=$(median "${T_CURL[@]}"); M_SSL=$(median "${T_SSL[@]}")
R_SWARM=$(mbps "$M_SWARM"); R_CURL=$(mbps "$M_CURL"); R_SSL=$(mbps "$M_SSL")
RATIO=$(awk -v s="$R_SWARM" -v c="$R_CURL" -v o="$R_SSL" 'BEGIN { m = (c < o) ? c : o; printf "%.2f", s / m }')
M_PLAIN=$(median "${T_PLAIN[@]}"); R_PLAIN=$(mbps "$M_PLAIN"); MC_PLAIN=$(median "${C_PLAIN[@]}")
RATIO_PLAIN=$(awk -v s="$R_PLAIN" -v c="$R_CURL" -v o="$R_SSL" 'BEGIN { m = (c < o) ? c : o; printf "%.2f", s / m }')
ENC_VS_PLAIN=$(awk -v e="$R_SWARM" -v p="$R_PLAIN" 'BEGIN { printf "%.2f", e / p }')
MC_SWARM=$(median "${C_SWARM[@]}"); MC_CURL=$(median "${C_CURL[@]}"); MC_SSL=$(median "${C_SSL[@]}")
M_RSS_KB=$(median "${RSS_SWARM[@]}")
RSS_MB=$(awk -v k="$M_RSS_KB" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
MAX_RSS_MB=$(printf '%s\n' "${RSS_SWARM[@]}" | sort -n | tail -n 1 | awk '{ printf "%.1f", $1 * 1024 / 1e6 }')
runs_of() { local IFS=';'; echo "$*"; }
fmt_runs() { local t out=""; for t in "$@"; do out+=$(printf '%.3f ' "$t"); done; echo "${out% }"; }

STAMP=$(date +%Y%m%d-%H%M%S)
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
CSV=$RESULTS_DIR/transfer-$STAMP.csv
mkdir -p "$RESULTS_DIR"
{
    echo "timestamp,size_bytes,runs,measurement,median_seconds,throughput_mb_s,median_cpu_seconds,run_seconds,ratio_to_min_curl_openssl,peak_rss_mb,load_before,load_after"
    echo "$STAMP,$SIZE,$RUNS,swarm_get,$M_SWARM,$R_SWARM,$MC_SWARM,$(runs_of "${T_SWARM[@]}"),$RATIO,$RSS_MB,$LOAD_BEFORE,$LOAD_AFTER"
    echo "$STAMP,$SIZE,$RUNS,swarm_get_plaintext,$M_PLAIN,$R_PLAIN,$MC_PLAIN,$(runs_of "${T_PLAIN[@]}"),$RATIO_PLAIN,,$LOAD_BEFORE,$LOAD_AFTER"
    echo "$STAMP,$SIZE,$RUNS,curl_nginx,$M_CURL,$R_CURL,$MC_CURL,$(runs_of "${T_CURL[@]}"),,,$LOAD_BEFORE,$LOAD_AFTER"
    echo "$STAMP,$SIZE,$RUNS,openssl_sha256,$M_SSL,$R_SSL,$MC_SSL,$(runs_of "${T_SSL[@]}"),,,$LOAD_BEFORE,$LOAD_AFTER"
} >"$CSV"

echo
echo "Transfer of $SIZE bytes on 127.0.0.1, median of $RUNS interleaved runs (MB = 10^6 bytes); outputs verified with cmp"
printf '%-34s %9s %9s %8s   %s\n' "measurement" "median s" "MB/s" "CPU s" "runs (s)"
printf '%-34s %9.3f %9s %8.2f   %s\n' "swarm get (2 nodes, encrypted)" "$M_SWARM" "$R_SWARM" "$MC_SWARM" "$(fmt_runs "${T_SWARM[@]}")"
printf '%-34s %9.3f %9s %8.2f   %s\n' "swarm get (2 nodes, plaintext)" "$M_PLAIN" "$R_PLAIN" "$MC_PLAIN" "$(fmt_runs "${T_PLAIN[@]}")"
printf '%-34s %9.3f %9s %8.2f   %s\n' "curl -o from nginx (sendfile)" "$M_CURL" "$R_CURL" "$MC_CURL" "$(fmt_runs "${T_CURL[@]}")"
printf '%-34s %9.3f %9s %8.2f   %s\n' "openssl dgst -sha256 (page cache)" "$M_SSL" "$R_SSL" "$MC_SSL" "$(fmt_runs "${T_SSL[@]}")"
echo "(CPU s: user + system seconds of client and server together: swarm get + swarm seed, curl + nginx)"
echo "swarm (encrypted) / min(curl, openssl): ${RATIO}x"
echo "swarm (plaintext) / min(...):      ${RATIO_PLAIN}x"
echo "swarm encrypted / swarm plaintext: ${ENC_VS_PLAIN}x"
echo "swarm get peak RSS:                ${RSS_MB} MB median, ${MAX_RSS_MB} MB max"
echo "load average (1 min) before / after: $LOAD_BEFORE / $LOAD_AFTER on $(nproc) CPUs (other load skews these numbers)"
echo "results written to ${CSV#"$ROOT"/}"
