#!/usr/bin/env python3
"""Waits for every host's fetch: completion = when its output file appears (a swarm get keeps serving its peers for a
while after that). One process polling every 50 ms, so the watching costs next to nothing beside what it measures.
usage: watch.py T0 TIMEOUT_S DIR... (each DIR holds 'pid' and, once done, 'out')
Prints one line per host (seconds after T0, or nan when it failed) and, last, 'ticks N': the CPU ticks (user + system)
the fetching processes used, as last seen while they ran."""
import os
import sys
import time

t0, timeout, dirs = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
pids = [int(open(os.path.join(d, "pid")).read()) for d in dirs]
done = [None] * len(dirs)
ticks = [0] * len(dirs)


def cpu_ticks(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


deadline = time.time() + timeout
while any(d is None for d in done) and time.time() < deadline:
    for i, d in enumerate(dirs):
        if done[i] is not None:
            continue
        t = cpu_ticks(pids[i])
        if t is not None:
            ticks[i] = t
        if os.path.exists(os.path.join(d, "out")):
            done[i] = time.time() - t0
        elif not alive(pids[i]):
            done[i] = float("nan")
    time.sleep(0.05)
# Hosts that finished keep running (serving); their CPU counts too, up to now.
for i in range(len(dirs)):
    t = cpu_ticks(pids[i])
    if t is not None:
        ticks[i] = max(ticks[i], t)
for d in done:
    print("nan" if d is None else f"{d:.3f}")
print(f"ticks {sum(ticks)}")
