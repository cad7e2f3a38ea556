#!/usr/bin/env python3
"""Run inside the hub namespace: once a second, how fast the origin and the hosts upload and download (from the hub's
veth counters: rx on v-X is what host X sent), and how busy the CPU is. Writes CSV lines until killed.
usage: timeline.py OUT.csv LINK_BITS [SOURCES]   (SOURCES: comma-separated hosts counted as the origin, default o;
hosts are the h* links)"""
import os
import sys
import time

out, link = sys.argv[1], float(sys.argv[2])
sources = sys.argv[3].split(",") if len(sys.argv) > 3 else ["o"]
nets = "/sys/class/net"


def counters():
    c = {}
    for name in os.listdir(nets):
        if name.startswith("v-"):
            base = f"{nets}/{name}/statistics"
            c[name[2:]] = (int(open(f"{base}/rx_bytes").read()), int(open(f"{base}/tx_bytes").read()))
    return c


def cpu():
    f = list(map(int, open("/proc/stat").readline().split()[1:9]))
    return sum(f), f[3] + f[4]


with open(out, "w", buffering=1) as w:
    w.write("t_s,origin_up_mbit,hosts_up_mbit,hosts_down_mbit,hosts_up_util,hosts_down_util,cpu_busy\n")
    start = time.time()
    prev, pc = counters(), cpu()
    while True:
        time.sleep(1)
        now, nc = counters(), cpu()
        dt_all, dt_idle = nc[0] - pc[0], nc[1] - pc[1]
        up = {k: (now[k][0] - prev[k][0]) * 8 / 1e6 for k in now if k in prev}
        down = {k: (now[k][1] - prev[k][1]) * 8 / 1e6 for k in now if k in prev}
        hosts = [k for k in up if k.startswith("h")]
        hu, hd = sum(up[k] for k in hosts), sum(down[k] for k in hosts)
        cap = len(hosts) * link / 1e6 or 1
        w.write(f"{time.time() - start:.0f},{sum(up.get(k, 0) for k in sources):.1f},{hu:.1f},{hd:.1f},{hu / cap:.2f},{hd / cap:.2f},{(dt_all - dt_idle) / max(dt_all, 1):.2f}\n")
        prev, pc = now, nc
