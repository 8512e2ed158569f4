"""A plain SVG line chart of memory over time, one line per run, written by hand so
that the demo needs nothing beyond Python's standard library. Runs that carry
"limits" (SLUICE_CONN_MAX=auto: the limit sluice kept, sampled with memory) get
a thin dotted step line of the same colour against a second axis on the right.
"""
from xml.sax.saxutils import escape

COLOURS = ["#7f7f7f", "#bcbd22", "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd",
           "#17becf", "#8c564b"]
# Bare runs are dashed, runs under sluice solid.
WIDTH, PLOT_HEIGHT = 960, 330
LEFT, RIGHT, TOP = 80, 60, 50
LEGEND_LINE = 21


def nice_step(span, ticks):
    raw = span / ticks
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
        if step >= raw:
            return step
    return raw


def write(path, rows, limit):
    mib = 1 << 20
    t_max = max([s[0] for r in rows for s in r["samples"]] + [1.0])
    caps = [r.get("cap_bytes", limit) for r in rows]
    y_max = max([s[1] for r in rows for s in r["samples"]] + [limit] + caps) / mib * 1.08
    x_step = nice_step(t_max, 10)
    t_max = x_step * (int(t_max / x_step) + 1)
    y_step = nice_step(y_max, 8)
    y_max = y_step * (int(y_max / y_step) + 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PLOT_HEIGHT
    height = TOP + plot_h + 62 + LEGEND_LINE * len(rows)

    def x(t):
        return LEFT + t / t_max * plot_w

    def y(v):
        return TOP + plot_h - v / mib / y_max * plot_h

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">'
           % (WIDTH, height, WIDTH, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="28" font-size="17" font-weight="bold">Server memory during '
           '%s concurrent requests (cap %d MiB%s)</text>'
           % (LEFT, " or ".join(str(c) for c in sorted({r.get("concurrency", 12) for r in rows})),
              limit // mib, "; other caps as marked" if set(caps) != {limit} else "")]
    # Grid and axes.
    v = 0
    while v <= y_max:
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>'
                   % (LEFT, LEFT + plot_w, y(v * mib), y(v * mib)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%d</text>'
                   % (LEFT - 8, y(v * mib) + 4, v))
        v += y_step
    t = 0
    while t <= t_max + 1e-9:
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#e5e5e5"/>'
                   % (x(t), x(t), TOP, TOP + plot_h))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>'
                   % (x(t), TOP + plot_h + 18, t))
        t += x_step
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>'
               % (LEFT, LEFT, TOP, TOP + plot_h))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>'
               % (LEFT, LEFT + plot_w, TOP + plot_h, TOP + plot_h))
    out.append('<text x="%d" y="%d" text-anchor="middle">seconds since the requests were sent</text>'
               % (LEFT + plot_w // 2, TOP + plot_h + 38))
    out.append('<text transform="translate(22,%d) rotate(-90)" text-anchor="middle">'
               'memory (MiB)</text>' % (TOP + plot_h // 2))
    # The limit sluice kept (auto rows), on the right-hand axis.
    lim_max = max([v for r in rows for _, v in r.get("limits", [])] + [0])
    if lim_max:
        lim_top = max(4, lim_max + 2)

        def ly_(v):
            return TOP + plot_h - v / lim_top * plot_h
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>'
                   % (LEFT + plot_w, LEFT + plot_w, TOP, TOP + plot_h))
        step = 1 if lim_top <= 12 else 2 if lim_top <= 24 else 5
        for v in range(0, lim_top + 1, step):
            out.append('<text x="%d" y="%.1f">%d</text>' % (LEFT + plot_w + 6, ly_(v) + 4, v))
        out.append('<text transform="translate(%d,%d) rotate(90)" text-anchor="middle">'
                   'limit kept by auto (dotted)</text>' % (WIDTH - 8, TOP + plot_h // 2))
        for i, r in enumerate(rows):
            pts = r.get("limits", [])
            if not pts:
                continue
            steps = []
            for k, (t, v) in enumerate(pts):
                if k:
                    steps.append("%.1f,%.1f" % (x(t), ly_(pts[k - 1][1])))
                steps.append("%.1f,%.1f" % (x(t), ly_(v)))
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.4" '
                       'stroke-dasharray="2,2" points="%s"/>'
                       % (COLOURS[i % len(COLOURS)], " ".join(steps)))
    # The cap (and any other cap a row ran under).
    for c in sorted(set([limit] + caps)):
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-width="1.5" '
                   'stroke-dasharray="2,4"/>' % (LEFT, LEFT + plot_w, y(c), y(c)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">memory cap %d MiB</text>'
                   % (LEFT + plot_w - 4, y(c) - 6, c // mib))
    # One line per run; a cross where the server was killed.
    for i, r in enumerate(rows):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="7,4"' if not r.get("settings") else ""
        points = " ".join("%.1f,%.1f" % (x(t), y(v)) for t, v in r["samples"])
        if points:
            out.append('<polyline fill="none" stroke="%s" stroke-width="2.2"%s points="%s"/>'
                       % (colour, dash, points))
        if not r["survived"] and r["samples"]:
            t_end, v_end = r["samples"][-1]
            cx, cy = x(t_end), y(v_end)
            out.append('<path d="M%.1f,%.1f l10,10 m0,-10 l-10,10" stroke="%s" stroke-width="3"/>'
                       % (cx - 5, cy - 5, colour))
    # Legend below the plot.
    ly = TOP + plot_h + 62
    for i, r in enumerate(rows):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="7,4"' if not r.get("settings") else ""
        row_y = ly + i * LEGEND_LINE
        out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>'
                   % (LEFT, LEFT + 34, row_y - 4, row_y - 4, colour, dash))
        result = "%d/%d served, %s, peak %d MiB, %.1f s" % (
            r["served"], r.get("concurrency", 12), "alive" if r["survived"] else r.get("killed_as", "OOM-killed") + " (x)",
            round(r["peak"] / mib), r["seconds"])
        out.append('<text x="%d" y="%d">%s — %s</text>'
                   % (LEFT + 44, row_y, escape(r["label"]), escape(result)))
    out.append('</svg>')
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
