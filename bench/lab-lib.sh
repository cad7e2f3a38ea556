# Shared by the lab scripts (bench/swarm-lab/run.sh, bench/image-lab/run.sh): sourced, not run.
# Expects REPO, PREFIX (namespace name prefix), NET (the lab's /16, e.g. 10.77), LAB (scratch directory), BIN (where
# swarm is published) and a log function to be set by the caller.

# cleanup: removes everything the lab made (processes, namespaces, the unreachable route, the scratch directory);
# installed for EXIT, and Ctrl-C / SIGTERM exit through it.
cleanup() {
    set +e
    kill_namespaces
    ip route del unreachable "$NET.0.0/16" 2>/dev/null
    [ -n "${CPU_PID:-}" ] && kill "$CPU_PID" 2>/dev/null
    rm -rf "$LAB"
}
install_cleanup() {
    trap cleanup EXIT
    trap 'log "interrupted: cleaning up"; exit 130' INT TERM
}

# publish_swarm: ReadyToRun, as deployed: many processes starting at once on two cores otherwise spend a large share
# of the run in the JIT (measured: a third of all CPU in the first 20 s).
publish_swarm() {
    log "publishing swarm (Release, ReadyToRun) to $BIN"
    (cd "$REPO" && dotnet publish Swarm.Cli/Swarm.Cli.csproj -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
        -o "$BIN" -v q -nologo >/dev/null) || { echo "run.sh: publish failed (dotnet publish Swarm.Cli -r linux-x64 -p:PublishReadyToRun=true)" >&2; exit 1; }
}

# 256MiB -> bytes; 50mbit -> bits per second
to_bytes() { python3 -c "import re,sys; m=re.fullmatch(r'(\d+)\s*([KMG]i?B?)?', sys.argv[1], re.I); u={'':1,'K':1024,'M':1<<20,'G':1<<30}[(m.group(2) or '')[:1].upper()]; print(int(m.group(1))*u)" "$1"; }
to_bits() { python3 -c "import re,sys; m=re.fullmatch(r'(\d+(?:\.\d+)?)\s*([kmg]?)bit', sys.argv[1], re.I); print(int(float(m.group(1))*{'':1,'k':1e3,'m':1e6,'g':1e9}[m.group(2).lower()]))" "$1"; }

# make_hub: the namespace $PREFIX-hub holding the bridge br0 every host's veth is attached to.
make_hub() {
    ip netns add "$PREFIX-hub"
    ip -n "$PREFIX-hub" link add br0 type bridge
    ip -n "$PREFIX-hub" link set br0 up
    ip -n "$PREFIX-hub" link set lo up
}

# make_host NAME IP BITS: a namespace $PREFIX-NAME whose eth0 is one end of a veth pair, the other end on the hub's
# bridge; both directions shaped with tbf to BITS per second.
make_host() {
    local name=$1 ip=$2 bits=$3 ns=$PREFIX-$1
    ip netns add "$ns"
    ip link add "v-$name" type veth peer name eth0 netns "$ns"
    ip link set "v-$name" netns "$PREFIX-hub"
    ip -n "$ns" addr add "$ip/16" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$PREFIX-hub" link set "v-$name" master br0 up
    local burst=$(( bits / 8 / 250 > 65536 ? bits / 8 / 250 : 65536 ))
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "${bits}bit" burst "$burst" latency 50ms
    ip netns exec "$PREFIX-hub" tc qdisc add dev "v-$name" root tbf rate "${bits}bit" burst "$burst" latency 50ms
}

# kill_namespaces: kills every process in the lab's namespaces and deletes them.
kill_namespaces() {
    local ns pids
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-"); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    done
    sleep 0.3
    # containerd's snapshots are mounts under the lab directory
    grep " $LAB/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-"); do ip netns del "$ns" 2>/dev/null; done
    return 0
}

# CPU use over the scenario from /proc/stat samples once a second: busy fraction (average and 90th percentile) and how
# the busy time splits into user (processes), system (syscalls) and softirq (the kernel moving packets: veth, bridge, tbf).
cpu_start() {
    ( while true; do head -1 /proc/stat; sleep 1; done ) > "$LAB/cpu.samples" &
    CPU_PID=$!
}
cpu_stop() {
    kill "$CPU_PID" 2>/dev/null; wait "$CPU_PID" 2>/dev/null || true; CPU_PID=""
    python3 - "$LAB/cpu.samples" <<'EOF2'
import sys
rows=[list(map(int,l.split()[1:9])) for l in open(sys.argv[1]) if l.startswith("cpu ")]
fr=[]; tot=[0]*8
for a,b in zip(rows,rows[1:]):
    d=[y-x for x,y in zip(a,b)]
    for k in range(8): tot[k]+=d[k]
    all_=sum(d) or 1
    fr.append((all_-d[3]-d[4])/all_)
all_=sum(tot) or 1
busy=(all_-tot[3]-tot[4])/all_
p90=sorted(fr)[int(0.9*(len(fr)-1))] if fr else 0
print(f"{busy:.2f} {p90:.2f} {(tot[0]+tot[1])/all_:.2f} {tot[2]/all_:.2f} {(tot[5]+tot[6])/all_:.2f}")
EOF2
}

