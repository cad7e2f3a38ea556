#!/usr/bin/env bash
# The long fuzzing campaign: afl-fuzz (Debian's afl++) over SharpFuzz-instrumented Swarm.Core, Swarm.Node and MessagePack,
# one decoder after another on one core, each until at least N executions; then a table of executions, crashes, hangs and
# coverage per decoder. The targets and their contracts are Swarm.Tests/Fuzz/FuzzTargets.cs; see Swarm.Tests/Fuzz/README.md.
#
#   bench/fuzz.sh [--execs N] [--target NAME]... [--out DIR] [--timeout MS] [--report-known] [--engine afl|inproc] [--no-build]
#
#   --execs N        executions per decoder (default 1000000)
#   --target NAME    only this decoder (repeatable; default every one, as 'Swarm.Fuzz list' prints them)
#   --out DIR        work folder: builds, afl output per target, results.tsv (default /tmp/swarm-fuzz)
#   --timeout MS     afl-fuzz's per-input time-out, beyond which an input counts as a hang (default 5000)
#   --report-known   count inputs of the known findings (Swarm.Tests/Fuzz/KnownFindings.cs) as crashes too; by default
#                    the harness lets them pass so the campaign looks past them, and a replay of each crash says known/new
#   --engine inproc  no afl-fuzz: the deterministic in-process mutation fuzzer (no coverage feedback), N mutations each
#   --no-build       reuse the build in --out
#
# Installs what it needs (as root on a fresh Debian machine): afl++ from Debian when afl-fuzz is missing, and the dotnet
# tool SharpFuzz.CommandLine 2.3.0 into DIR/tools. Runs under 'nice -n 10'. Exit status: 0 when no new crash or hang.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXECS=1000000
OUT=/tmp/swarm-fuzz
TIMEOUT=5000
ENGINE=afl
BUILD=1
KNOWN=ignore
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --execs) EXECS=$2; shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --report-known) KNOWN=report; shift ;;
    --engine) ENGINE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ENGINE" in afl|inproc) ;; *) echo "fuzz.sh: --engine is afl or inproc" >&2; exit 2 ;; esac

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$OUT/bin          # as built: corpus, dictionaries, replays
BIN_AFL=$OUT/bin-afl  # Swarm.Core, Swarm.Node and MessagePack instrumented: only for afl-fuzz
CORPUS=$ROOT/Swarm.Tests/Fuzz/corpus
log() { echo "fuzz.sh: $*" >&2; }

# ---- what it needs ----
if [ "$ENGINE" = afl ] && ! command -v afl-fuzz >/dev/null; then
  log "installing afl++ (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends afl++ >/dev/null
fi
SHARPFUZZ=$OUT/tools/sharpfuzz
if [ "$ENGINE" = afl ] && [ ! -x "$SHARPFUZZ" ]; then
  log "installing SharpFuzz.CommandLine 2.3.0 into $OUT/tools"
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$OUT/tools" >/dev/null
fi

# ---- build and instrument ----
if [ "$BUILD" = 1 ]; then
  log "building Swarm.Tests/Fuzz/Swarm.Fuzz.csproj (Release)"
  nice -n 10 dotnet build "$ROOT/Swarm.Tests/Fuzz/Swarm.Fuzz.csproj" -c Release -nologo -v quiet 2>&1 | grep -E ' error |rror\(s\)' >&2 || true
  built=$ROOT/Swarm.Tests/bin/Swarm.Fuzz/Release/net10.0
  [ -x "$built/Swarm.Fuzz" ] || { log "the build failed"; exit 1; }
  rm -rf "$BIN" "$BIN_AFL"
  cp -r "$built" "$BIN"
  if [ "$ENGINE" = afl ]; then
    cp -r "$built" "$BIN_AFL"
    for dll in Swarm.Core.dll Swarm.Node.dll MessagePack.dll; do
      "$SHARPFUZZ" "$BIN_AFL/$dll" >/dev/null || { log "sharpfuzz could not instrument $dll"; exit 1; }
    done
  fi
fi
[ -x "$BIN/Swarm.Fuzz" ] || { log "no build in $BIN (drop --no-build)"; exit 1; }
if [ ${#TARGETS[@]} -eq 0 ]; then mapfile -t TARGETS < <("$BIN/Swarm.Fuzz" list | cut -f1); fi

stat_of() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

RESULTS=$OUT/results.tsv
[ -f "$RESULTS" ] || printf 'date\ttarget\tengine\texecutions\tcrashes\tnew_crashes\thangs\tedges_found\tmap_size\tbitmap_cvg\tcorpus\tseconds\texecs_per_sec\tcommand\n' > "$RESULTS"
FAILED=0
printf '%-20s %12s %8s %6s %6s %8s %10s %8s %10s\n' target executions crashes new hangs edges bitmap_cvg seconds execs/s
for t in "${TARGETS[@]}"; do
  [ -d "$CORPUS/$t" ] || { log "no corpus for $t under $CORPUS"; exit 1; }
  when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [ "$ENGINE" = inproc ]; then
    cmd="nice -n 10 Swarm.Fuzz inproc $t $EXECS"
    start=$(date +%s)
    line=$(SWARM_FUZZ_CORPUS=$CORPUS nice -n 10 "$BIN/Swarm.Fuzz" inproc "$t" "$EXECS" | tee "$OUT/inproc-$t.log" | head -1) || FAILED=1
    secs=$(( $(date +%s) - start ))
    execs=$(sed -E 's/.*executions=([0-9]+).*/\1/' <<<"$line")
    viol=$(sed -E 's/.*violations=([0-9]+).*/\1/' <<<"$line")
    rate=$(sed -E 's/.*execs_per_sec=([0-9]+).*/\1/' <<<"$line")
    printf '%-20s %12s %8s %6s %6s %8s %10s %8s %10s\n' "$t" "$execs" "$viol" "$viol" - - - "$secs" "$rate"
    printf '%s\t%s\tinproc\t%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\t%s\t%s\n' "$when" "$t" "$execs" "$viol" "$viol" "$secs" "$rate" "$cmd" >> "$RESULTS"
    continue
  fi
  "$BIN/Swarm.Fuzz" dict "$t" "$OUT/$t.dict"
  findings=$OUT/afl/$t
  rm -rf "$findings"
  mkdir -p "$OUT/afl"
  cmd="afl-fuzz -i Swarm.Tests/Fuzz/corpus/$t -o $findings -t $TIMEOUT -x $t.dict -E $EXECS -- bin-afl/Swarm.Fuzz afl $t"
  log "$t: $cmd"
  # One core, niced; no CPU binding (the machine is shared); the .NET fork server needs a while to start.
  env AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
      AFL_FORKSRV_INIT_TMOUT=120000 SWARM_FUZZ_KNOWN=$KNOWN \
    nice -n 10 afl-fuzz -i "$CORPUS/$t" -o "$findings" -t "$TIMEOUT" -x "$OUT/$t.dict" -E "$EXECS" \
      -- "$BIN_AFL/Swarm.Fuzz" afl "$t" > "$OUT/afl-$t.log" 2>&1 || { log "$t: afl-fuzz failed, see $OUT/afl-$t.log"; tail -5 "$OUT/afl-$t.log" >&2; FAILED=1; continue; }
  # afl-fuzz ends the target with SIGKILL: remove the scratch folders of harness processes that are gone.
  for d in /dev/shm/swarm-fuzz-*; do
    [ -d "$d" ] && [[ ${d##*-} =~ ^[0-9]+$ ]] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
  done
  stats=$findings/default/fuzzer_stats
  execs=$(stat_of execs_done "$stats"); crashes=$(stat_of saved_crashes "$stats"); hangs=$(stat_of saved_hangs "$stats")
  edges=$(stat_of edges_found "$stats"); map=$(stat_of total_edges "$stats"); cvg=$(stat_of bitmap_cvg "$stats")
  corpus=$(stat_of corpus_count "$stats"); secs=$(stat_of run_time "$stats"); rate=$(stat_of execs_per_sec "$stats")
  new=0
  shopt -s nullglob
  crash_files=("$findings"/default/crashes/id*)
  if [ ${#crash_files[@]} -gt 0 ]; then
    # Replayed with the uninstrumented build: which are known findings, which are new.
    SWARM_FUZZ_CORPUS=$CORPUS "$BIN/Swarm.Fuzz" replay "$t" "${crash_files[@]}" > "$OUT/replay-$t.log" 2>&1 || true
    new=$(grep -c $'\tNEW' "$OUT/replay-$t.log" || true)
  fi
  shopt -u nullglob
  [ "$new" -gt 0 ] && FAILED=1
  [ "$hangs" -gt 0 ] && FAILED=1
  [ "$KNOWN" = report ] || [ "$crashes" -eq 0 ] || FAILED=1
  printf '%-20s %12s %8s %6s %6s %8s %10s %8s %10s\n' "$t" "$execs" "$crashes" "$new" "$hangs" "$edges" "$cvg" "$secs" "$rate"
  printf '%s\t%s\tafl\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$when" "$t" "$execs" "$crashes" "$new" "$hangs" "$edges" "$map" "$cvg" "$corpus" "$secs" "$rate" "$cmd" >> "$RESULTS"
done
log "results appended to $RESULTS; afl-fuzz's output per target under $OUT/afl/"
exit $FAILED
