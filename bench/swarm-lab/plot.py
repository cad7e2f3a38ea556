#!/usr/bin/env python3
"""Plots the lab CSV (bench/swarm-lab/run.sh) as an SVG: time until the last host has the file, against the number of
hosts, for curl, Swarm with a seed, Swarm cold start, libtorrent (when run), and the Kumar-Ross bound. No dependencies beyond Python 3."""
import csv
import math
import sys

SERIES = [("curl", "curl from the origin", "#d62728"), ("seed", "swarm get, seeded", "#1f77b4"),
          ("cold", "swarm get, cold start", "#2ca02c"), ("libtorrent", "libtorrent 2.0, seeded", "#9467bd"),
          ("bound", "Kumar-Ross bound", "#7f7f7f")]


def main(path, out):
    rows = list(csv.DictReader(open(path)))
    if not rows:
        sys.exit("plot.py: no rows in " + path)
    points = {key: [] for key, _, _ in SERIES}
    bounds = {}
    for r in rows:
        n = int(r["hosts"])
        t = float(r["p100_s"])
        if not math.isnan(t):
            points[r["scenario"]].append((n, t))
        bounds[n] = float(r["bound_s"])
    points["bound"] = sorted(bounds.items())
    xs = sorted({n for pts in points.values() for n, _ in pts})
    ymax = max(t for pts in points.values() for _, t in pts) * 1.2
    ymin = min(t for pts in points.values() for _, t in pts) / 1.5
    # Log scale: curl grows with N while the swarm stays near the bound; both must be readable.
    lo, hi = math.log10(ymin), math.log10(ymax)
    w, h, left, right, top, bottom = 720, 440, 70, 200, 40, 60
    pw, ph = w - left - right, h - top - bottom
    xmin, xmax = 0, max(xs)
    sx = lambda n: left + (n - xmin) / (xmax - xmin) * pw
    sy = lambda t: top + ph - (math.log10(t) - lo) / (hi - lo) * ph
    first = rows[0]
    title = f"Time until every host has the file ({int(first['size_bytes']) >> 20} MiB, {first['rate']} links)"
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2 - right / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
           f'<text x="{left + pw / 2}" y="{h - 15}" text-anchor="middle">hosts</text>',
           f'<text x="18" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 {top + ph / 2})">seconds until the last host is done (log scale)</text>']
    for n in xs:
        svg.append(f'<line x1="{sx(n)}" y1="{top + ph}" x2="{sx(n)}" y2="{top + ph + 5}" stroke="black"/>')
        svg.append(f'<text x="{sx(n)}" y="{top + ph + 18}" text-anchor="middle">{n}</text>')
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            t = m * 10 ** decade
            if ymin <= t <= ymax:
                svg.append(f'<line x1="{left - 5}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="#e0e0e0"/>')
                svg.append(f'<text x="{left - 8}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (key, label, color) in enumerate(SERIES):
        pts = sorted(points[key])
        if not pts:
            continue
        dash = ' stroke-dasharray="6 4"' if key == "bound" else ""
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="' +
                   " ".join(f"{sx(n):.1f},{sy(t):.1f}" for n, t in pts) + '"/>')
        for n, t in pts:
            svg.append(f'<circle cx="{sx(n):.1f}" cy="{sy(t):.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + i * 20
        svg.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 40}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{left + pw + 45}" y="{ly + 4}">{label}</text>')
    svg.append("</svg>")
    open(out, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py LAB.csv OUT.svg")
    main(sys.argv[1], sys.argv[2])
