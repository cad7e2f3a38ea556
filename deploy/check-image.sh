#!/usr/bin/env bash
# Runs the node image the way deploy/daemonset.yaml does, with podman on this machine, and checks that it works:
#
#   sudo deploy/check-image.sh [--image localhost/swarm:VERSION]      (build it first: sudo deploy/build-image.sh)
#
#   1. reads the DaemonSet (python3-yaml): the init container's and the node container's image, command, args and env,
#      with Kubernetes' $(VAR) expansion of args and the pod IP as the node's (host network: 127.0.0.1 here);
#   2. runs the init container with podman — host network, the hostPath /etc/containerd/certs.d as a volume from a
#      temporary directory — and checks that it wrote hosts.toml for every registry it names;
#   3. runs the node container the same way (the data hostPath as a volume, read-only root file system and no
#      capabilities as its securityContext says), the Service's bootstrap name mapped to 127.0.0.1 with --add-host
#      so that no DNS query leaves the machine, and waits for /healthz on $(POD_IP):7402 to answer 200;
#   4. runs the preStop hook in the container and checks that the hosts.toml files are gone; stops the container with
#      SIGTERM and checks that it exits 0;
#   5. checks the manifests parse as Kubernetes objects with `kubectl create --dry-run=client` against a stand-in API
#      server that answers only discovery (no cluster here; --validate=false, so this checks kinds, API versions and
#      YAML, not the schema of every field).
# Exits non-zero with the reason when a step fails. Uses ports 7400-7402 on 127.0.0.1 (they must be free).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
VERSION=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n1)
IMAGE="localhost/swarm:$VERSION"
while [[ $# -gt 0 ]]; do
    case $1 in
        --image) IMAGE=${2:?--image needs a value}; shift 2 ;;
        -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-image.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
command -v podman >/dev/null || die "podman is missing: apt-get install podman"
python3 -c 'import yaml' 2>/dev/null || die "python3-yaml is missing: apt-get install python3-yaml"
podman image exists "$IMAGE" || die "no image $IMAGE in local storage: run deploy/build-image.sh first"

WORK=$(mktemp -d /tmp/swarm-image-check.XXXXXX)
NAME=swarm-image-check-$$
cleanup() {
    podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
    [[ -n ${API_PID:-} ]] && kill "$API_PID" 2>/dev/null || true
    rm -rf -- "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/certs.d" "$WORK/data" "$WORK/registries"

# 1. The DaemonSet's containers as podman arguments: one NUL-separated list per container.
python3 - deploy/daemonset.yaml "$WORK" <<'PY'
import sys, yaml, re, os
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = next(d for d in docs if d["kind"] == "DaemonSet")
svc = next(d for d in docs if d["kind"] == "Service")
spec = ds["spec"]["template"]["spec"]
assert spec.get("hostNetwork") is True, "the DaemonSet must use the host network"
pod_ip = "127.0.0.1"
def env_of(c):
    env = {}
    for e in c.get("env", []):
        if "value" in e: env[e["name"]] = str(e["value"])
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP": env[e["name"]] = pod_ip
        else: raise SystemExit(f"env {e['name']}: only values and status.podIP are understood here")
    return env
def expand(s, env): return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), s)
mounts = {v["name"]: v for v in spec["volumes"]}
host_dirs = {"/etc/containerd/certs.d": "certs.d", "/var/lib/swarm": "data"}
def podman_args(c):
    env = env_of(c)
    out = []
    for k, v in env.items(): out += ["--env", f"{k}={v}"]
    for m in c.get("volumeMounts", []):
        vol = mounts[m["name"]]
        if "hostPath" in vol: src = os.path.join(sys.argv[2], host_dirs[vol["hostPath"]["path"]])
        elif "secret" in vol: src = os.path.join(sys.argv[2], "registries")   # the optional Secret, absent: empty
        elif "emptyDir" in vol:
            out += ["--tmpfs", m["mountPath"]]; continue
        else: raise SystemExit(f"volume {m['name']}: not understood here")
        out += ["--volume", f"{src}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem"): out += ["--read-only"]
    for cap in sc.get("capabilities", {}).get("drop", []): out += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False: out += ["--security-opt", "no-new-privileges"]
    if "command" in c: out += ["--entrypoint", yaml.safe_dump(c["command"], default_flow_style=True).strip()]
    return out, [expand(a, env) for a in c.get("args", [])]
def write(name, args): open(os.path.join(sys.argv[2], name), "wb").write(b"".join(a.encode() + b"\0" for a in args))
init = spec["initContainers"][0]; node = spec["containers"][0]
for name, c in (("init", init), ("node", node)):
    opts, args = podman_args(c)
    write(name + ".opts", opts); write(name + ".cmd", args)
    open(os.path.join(sys.argv[2], name + ".image"), "w").write(c["image"])
write("prestop.args", node["lifecycle"]["preStop"]["exec"]["command"])
registries = [init["args"][i + 1] for i, a in enumerate(init["args"]) if a == "--registry"]
open(os.path.join(sys.argv[2], "registries.txt"), "w").write("\n".join(registries) + "\n")
boot = env_of(node).get("SWARM_BOOTSTRAP", "").split(":")[0]
open(os.path.join(sys.argv[2], "bootstrap-host"), "w").write(boot)
PY

# Reads a NUL-separated list written above into the array named by $2.
read_args() { local -n into=$2; into=(); while IFS= read -r -d '' a; do into+=("$a"); done < "$1"; }
run_container() { # $1: init or node; the rest: extra podman options
    local which=$1; shift
    local opts=() cmd=()
    read_args "$WORK/$which.opts" opts
    read_args "$WORK/$which.cmd" cmd
    [[ $(cat "$WORK/$which.image") == "$IMAGE" ]] || log "the DaemonSet names $(cat "$WORK/$which.image"); running $IMAGE, built here"
    # Limits below this shell's own: podman's defaults raise RLIMIT_NOFILE and RLIMIT_NPROC, which a sandboxed machine
    # refuses (runc: "error setting rlimit ... operation not permitted"); a kubelet's containers get containerd's.
    podman run --network host --ulimit nofile=16384:16384 --ulimit nproc=4096:4096 "${opts[@]}" "$@" "$IMAGE" "${cmd[@]}"
}

log "init container (containerd-config) as the DaemonSet runs it"
run_container init --rm >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "the init container failed"; }
while read -r registry; do
    [[ -f $WORK/certs.d/$registry/hosts.toml ]] || { cat "$WORK/init.log" >&2; die "no hosts.toml for $registry"; }
    grep -q 'capabilities = \["pull", "resolve"\]' "$WORK/certs.d/$registry/hosts.toml" || die "hosts.toml for $registry has no mirror host"
done < "$WORK/registries.txt"
log "  hosts.toml written for: $(tr '\n' ' ' < "$WORK/registries.txt")"

log "node container as the DaemonSet runs it"
bootstrap_host=$(cat "$WORK/bootstrap-host")
run_container node -d --name "$NAME" --add-host "$bootstrap_host:127.0.0.1" >/dev/null \
    || die "the node container did not start"
for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:7402/healthz || true)
    [[ $code == 200 ]] && break
    [[ $(podman inspect -f '{{.State.Running}}' "$NAME") == true ]] || { podman logs "$NAME" >&2; die "the node container exited"; }
    sleep 0.5
done
[[ $code == 200 ]] || { podman logs "$NAME" >&2; die "/healthz on 127.0.0.1:7402 did not answer 200 within 60 s (last: $code)"; }
log "  /healthz answered 200 on the pod IP"
curl -sf --max-time 5 http://127.0.0.1:7402/metrics | grep -q '^swarm_' || die "/metrics has no swarm_ metric"

log "preStop hook"
prestop=(); read_args "$WORK/prestop.args" prestop
podman exec "$NAME" "${prestop[@]}" >"$WORK/prestop.log" 2>&1 || { cat "$WORK/prestop.log" >&2; die "the preStop hook failed"; }
while read -r registry; do
    [[ ! -e $WORK/certs.d/$registry/hosts.toml ]] || die "preStop left $registry/hosts.toml"
done < "$WORK/registries.txt"
log "  hosts.toml removed"
podman stop -t 30 "$NAME" >/dev/null
status=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
[[ $status == 0 ]] || { podman logs "$NAME" | tail -20 >&2; die "the node exited $status on SIGTERM"; }
log "  SIGTERM: exit 0"

if command -v kubectl >/dev/null; then
    log "kubectl create --dry-run=client against a discovery-only stand-in API server"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 - "$port" <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
def res(name, kind, ns=True): return {"name": name, "singularName": "", "namespaced": ns, "kind": kind, "verbs": ["create", "get", "list"]}
docs = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
              "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [res("services", "Service"), res("secrets", "Secret"), res("namespaces", "Namespace", False)]},
    "/apis/apps/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [res("daemonsets", "DaemonSet")]},
}
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = docs.get(self.path.split("?")[0])
        self.send_response(200 if body else 404); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(json.dumps(body or {"kind": "Status", "code": 404}).encode())
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    API_PID=$!
    sleep 1
    cat > "$WORK/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: stand-in, cluster: {server: "http://127.0.0.1:$port"}}]
contexts: [{name: stand-in, context: {cluster: stand-in}}]
current-context: stand-in
KC
    KUBECONFIG=$WORK/kubeconfig kubectl create --dry-run=client --validate=false -f deploy/daemonset.yaml -o name >"$WORK/kubectl.log" 2>&1 \
        || { cat "$WORK/kubectl.log" >&2; die "kubectl create --dry-run=client"; }
    log "  $(tr '\n' ' ' < "$WORK/kubectl.log")"
else
    log "kubectl is not installed: skipped the dry run (apt-get install kubernetes-client)"
fi
log "OK: $IMAGE runs as deploy/daemonset.yaml says"
