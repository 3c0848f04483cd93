#!/usr/bin/env python3
"""Summarise a bench/run.sh results directory.

Usage: report.py RESULTS_DIR [--chart]

Reads RESULTS_DIR/metrics.jsonl (one JSON line per trawler or wget run) and
RESULTS_DIR/run.json, writes RESULTS_DIR/results.md (per configuration a
table: metric, median, all runs, target) and prints it; with --chart also
writes chart-<pages>.png per configuration (gnuplot) and chart.png (the
first). Exit status 1 if a trawler run failed: non-zero exit, crawl not
complete, or pages fetched != pages generated (or not all 2xx).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    if x is None:
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and abs(x) >= 100 and nd <= 2):
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, nd)


def per_k(m, key):
    v = m.get(key)
    return None if v is None or not m.get("pages") else v * 1000.0 / m["pages"]


def progress(d, m):
    """(seconds to 10% of pages done, pages/s from 10% to 90%) from the
    progress lines `trawlerctl wait` prints every ~2 s into summary.txt,
    interpolated linearly; (None, None) when there are too few lines."""
    path = os.path.join(d, "run-%d-%d" % (m["pages_expected"], m["run"]), "summary.txt")
    pts = [(0.0, 0)]
    try:
        for line in open(path, encoding="utf-8", errors="replace"):
            f = dict(x.split("=", 1) for x in line.split() if "=" in x)
            if "done" in f and "elapsed" in f:
                pts.append((float(f["elapsed"].rstrip("s")), int(f["done"])))
    except OSError:
        return None, None
    n = m.get("pages") or 0

    def when(target):
        for (t0, d0), (t1, d1) in zip(pts, pts[1:]):
            if d0 < target <= d1:
                return t0 + (t1 - t0) * (target - d0) / (d1 - d0)
        return None
    a, b = when(0.1 * n), when(0.9 * n)
    if a is None or b is None or b <= a or len(pts) < 5:
        return a, None
    return a, 0.8 * n / (b - a)


def mib(kib):
    return None if kib is None else kib / 1024.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    chart = "--chart" in sys.argv[2:]
    runs = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
    info = json.load(open(os.path.join(d, "run.json")))
    sizes = sorted({m["pages_expected"] for m in runs})
    out = []
    failed = []
    warnings = []
    w = out.append
    w("# trawler benchmark %s\n" % info["started"])
    w("- command: `%s`" % info["command"].strip())
    w("- source: %s" % info["source"])
    w("- machine: %d cores (%s), %.1f GiB RAM, Linux %s; load average before: %s"
      % (info["nproc"], info["cpu_model"], info["mem_gib"], info["kernel"], info["loadavg_before"]))
    w("- workers: %d producer(s), %d consumer(s), --host-connections %d, --delay 0; "
      "Kafka, Redis and nginx on the same machine; %d run(s) per configuration, medians"
      % (info["producers"], info["consumers"], info["host_connections"], info["repeat"]))
    w("- benchmark wall time: %s s" % info["bench_seconds"])
    if info.get("smoke"):
        w("- smoke run: it checks that the pipeline completes with every page; the "
          "targets are meant for the 20,000-page runs, not for a 300-page site")
    w("")

    worker_rss = {}
    charts = []
    for n in sizes:
        tr = [m for m in runs if m["kind"] == "trawler" and m["pages_expected"] == n]
        wg = [m for m in runs if m["kind"] == "wget" and m["pages_expected"] == n]
        for m in tr:
            problems = []
            if m["rc"] != 0:
                problems.append("run.sh exit %d" % m["rc"])
            if not m.get("complete"):
                problems.append("crawl not complete")
            if m["pages"] != n or m.get("pages_jsonl") != n:
                problems.append("%s pages (%s lines in pages.jsonl), expected %d"
                                % (m["pages"], m.get("pages_jsonl"), n))
            elif m.get("status_2xx") != n:
                problems.append("%s of %d pages 2xx (status classes: %s)"
                                % (m.get("status_2xx"), n, m.get("status", "?")))
            if m.get("nginx_errors"):
                problems.append("%d error lines in nginx's error log" % m["nginx_errors"])
            if problems:
                failed.append("trawler %d pages run %d: %s" % (n, m["run"], "; ".join(problems)))
        rows = []

        def row(name, vals, nd=2, target="", check=None):
            v = med(vals)
            t = target
            if check is not None and v is not None and target:
                t += " — **met**" if check(v) else " — **missed**"
            rows.append((name, fmt(v, nd), " / ".join(fmt(x, nd) for x in vals), t))
            return v

        def s(key, ms=tr):
            return [m.get(key) for m in ms]

        def k(key, ms=tr):
            return [per_k(m, key) for m in ms]

        row("pages fetched (generated: %d)" % n, s("pages"), 0)
        pps = row("**pages/s end to end** (run.sh: seed → complete)", s("pages_per_s"), 0,
                  "≥ 2,000", lambda v: v >= 2000)
        row("pages/s, Redis clock (seed → last page done)", s("pages_per_s_redis"), 0)
        prog = [progress(d, m) for m in tr]
        row("pages/s between 10% and 90% of pages done (steady state)", [p[1] for p in prog], 0)
        row("seconds from seed to 10% of pages done (start-up)", [p[0] for p in prog], 1)
        row("wall time seed → complete, s (run.sh)", s("wall_s"))
        row("run.sh total wall, s (incl. worker start and exit)", s("wall_total_s"))
        row("CPU s / 1,000 pages: producer(s)", k("cpu_producer"), 3)
        row("CPU s / 1,000 pages: consumer(s)", k("cpu_consumer"), 3)
        pc = [None if m.get("cpu_producer") is None or m.get("cpu_consumer") is None
              else (m["cpu_producer"] + m["cpu_consumer"]) * 1000.0 / m["pages"] if m["pages"] else None
              for m in tr]
        row("**CPU s / 1,000 pages: producers + consumers**", pc, 3, "≤ 0.5", lambda v: v <= 0.5)
        row("CPU s / 1,000 pages: Kafka broker (java)", k("cpu_kafka"), 3)
        row("CPU s / 1,000 pages: Redis", k("cpu_redis"), 3)
        row("CPU s / 1,000 pages: nginx", k("cpu_nginx"), 3)
        allp = [None if any(m.get(x) is None for x in ("cpu_producer", "cpu_consumer")) or not m["pages"]
                else sum(m[x] for x in ("cpu_producer", "cpu_consumer", "cpu_kafka", "cpu_redis", "cpu_nginx"))
                * 1000.0 / m["pages"] for m in tr]
        row("CPU s / 1,000 pages: all of the above", allp, 3)
        row("CPU s / 1,000 pages: whole machine (/proc/stat, incl. other processes)", k("cpu_machine"), 3)
        row("machine CPU busy during run.sh, % of all cores",
            [m["machine_busy_frac"] * 100 for m in tr], 0)
        row("machine busy just before the run (other processes), %", s("busy_before_pct"), 0)
        row("peak RSS MiB: producer (largest)", [mib(x) for x in s("rss_producer")], 1)
        row("peak RSS MiB: consumer (largest)", [mib(x) for x in s("rss_consumer")], 1)
        row("peak RSS MiB: Kafka broker", [mib(x) for x in s("rss_kafka")], 1)
        row("peak RSS MiB: Redis", [mib(x) for x in s("rss_redis")], 1)
        row("peak RSS MiB: nginx (master/worker, largest)", [mib(x) for x in s("rss_nginx")], 1)
        row("URLs admitted (trawlerctl status)", s("admitted"), 0)
        row("**Redis bytes / URL** (used_memory after − before)",
            [m["redis_mem_delta"] / m["admitted"] if m.get("admitted") else None for m in tr], 2,
            "≤ 5", lambda v: v <= 5)
        row("Redis dataset bytes / URL (used_memory_dataset after − before)",
            [m["redis_used_memory_dataset_delta"] / m["admitted"]
             if m.get("admitted") and "redis_used_memory_dataset_delta" in m else None for m in tr], 2)
        row("dedup sets alone, bytes / URL (MEMORY USAGE, %s keys)" % fmt(med(s("dedup_keys")), 0),
            [m["dedup_bytes"] / m["admitted"] if m.get("admitted") else None for m in tr], 2,
            "≤ 5", lambda v: v <= 5)
        wpps = None
        if wg:
            for m in wg:
                if m["pages"] != n or m["rc"] != 0:
                    warnings.append("wget %d pages run %d: exit %d, %d pages fetched (expected %d)"
                                    % (n, m["run"], m["rc"], m["pages"], n))
            row("wget -r (4 processes): pages fetched", s("pages", wg), 0)
            wpps = row("wget -r: pages/s", s("pages_per_s", wg), 0)
            row("wget -r: wall, s", s("wall_s", wg))
            row("wget -r: CPU s / 1,000 pages (wget)", k("cpu_wget", wg), 3)
            row("wget -r: CPU s / 1,000 pages (nginx)", k("cpu_nginx", wg), 3)
            row("wget -r: CPU s / 1,000 pages (whole machine)", k("cpu_machine", wg), 3)
            row("wget -r: peak RSS MiB (largest wget)", [mib(x) for x in s("rss_wget", wg)], 1)
            row("wget -r: machine busy just before the run, %", s("busy_before_pct", wg), 0)
            if pps and wpps:
                rows.append(("trawler pages/s ÷ wget pages/s (medians)", fmt(pps / wpps, 2), "", ""))
            ta = med(allp)
            wa = med(k("cpu_wget", wg))
            if ta and wa:
                rows.append(("trawler all-process CPU ÷ wget CPU per page (medians)", fmt(ta / wa, 2), "", ""))
        worker_rss[n] = (med(s("rss_producer")), med(s("rss_consumer")))

        w("## %s pages, 4 hosts\n" % "{:,}".format(n))
        w("| metric | median | runs | target |")
        w("| --- | ---: | --- | --- |")
        for r in rows:
            w("| %s | %s | %s | %s |" % r)
        w("")

        if chart:
            png = "chart-%d.png" % n
            if make_chart(d, n, tr, wg, png, info):
                charts.append(png)

    w("## Worker RSS as the crawl grows\n")
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        w("| metric | %s pages | %s pages | ratio | target |" % ("{:,}".format(lo), "{:,}".format(hi)))
        w("| --- | ---: | ---: | ---: | --- |")
        for i, name in enumerate(("producer", "consumer")):
            a, b = worker_rss[lo][i], worker_rss[hi][i]
            ratio = b / a if a and b else None
            ok = ratio is not None and ratio <= 1.10
            w("| peak RSS MiB, %s (median) | %s | %s | %s | ≤ 1.10 — **%s** |"
              % (name, fmt(mib(a), 1), fmt(mib(b), 1), fmt(ratio, 3), "met" if ok else "missed"))
    else:
        w("Only one site size in this run. For the \"flat RSS\" target (20,000 vs 100,000 pages "
          "within 10%) run `bench/run.sh --pages 20000,100000`, or compare the peak RSS rows "
          "of two runs (`--pages 20000` and `--pages 100000`).")
    w("")
    if charts:
        shutil.copyfile(os.path.join(d, charts[0]), os.path.join(d, "chart.png"))
        w("![chart](chart.png)\n")
    if warnings:
        w("## Warnings\n")
        for x in warnings:
            w("- " + x)
        w("")
    if failed:
        w("## Failed runs\n")
        for f in failed:
            w("- " + f)
        w("")
    text = "\n".join(out)
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write(text)
    print(text)
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        sys.exit(1)


def make_chart(d, n, tr, wg, png, info):
    if not shutil.which("gnuplot"):
        print("report.py: gnuplot not found, no chart", file=sys.stderr)
        return False
    dat = os.path.join(d, "chart-%d" % n)

    def mk(key, ms):
        return med([per_k(m, key) for m in ms]) or 0

    with open(dat + "-pps.dat", "w") as f:
        f.write('"trawler\\n(full pipeline)" %f 1\n' % (med([m.get("pages_per_s") for m in tr]) or 0))
        if wg:
            f.write('"wget -r\\n(4 processes)" %f 2\n' % (med([m.get("pages_per_s") for m in wg]) or 0))
    with open(dat + "-cpu.dat", "w") as f:
        for label, key in (("producer", "cpu_producer"), ("consumer", "cpu_consumer"),
                           ("Kafka", "cpu_kafka"), ("Redis", "cpu_redis"), ("nginx", "cpu_nginx")):
            f.write('"%s" %f 1\n' % (label, mk(key, tr)))
        if wg:
            f.write('"wget" %f 2\n' % mk("cpu_wget", wg))
            f.write('"nginx\\n(wget)" %f 2\n' % mk("cpu_nginx", wg))
    gp = dat + ".gp"
    with open(gp, "w") as f:
        f.write("""
set terminal pngcairo size 1200,560 font ",10" noenhanced
set output '{png}'
set multiplot layout 1,2 title "trawler benchmark: {n:,} pages, 4 hosts, {cores} cores ({model}), median of {rep} run(s)"
set style fill solid 0.85 border -1
set bmargin 6
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set linetype 1 lc rgb "#1f77b4"
set linetype 2 lc rgb "#ff7f0e"
set title "pages/s end to end (dashed: target 2,000)"
set xrange [-0.6:1.6]
plot '{dat}-pps.dat' using 0:2:3:xtic(1) with boxes lc variable notitle, \\
     '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8 notitle, \\
     2000 with lines dt 2 lc rgb "#444444" notitle
set title "CPU seconds per 1,000 pages, per process (blue: trawler run, orange: wget run)"
set xrange [-0.6:*]
set xtics rotate by -30
plot '{dat}-cpu.dat' using 0:2:3:xtic(1) with boxes lc variable notitle, \\
     '' using 0:2:(sprintf("%.2f", $2)) with labels offset 0,0.8 notitle
unset multiplot
""".format(png=os.path.join(d, png), n=n, cores=info["nproc"], model=info["cpu_model"],
           rep=info["repeat"], dat=dat))
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0 and "pngcairo" in r.stderr:
        txt = open(gp).read().replace("pngcairo size 1200,560 font \",10\"", "png size 1200,560")
        open(gp, "w").write(txt)
        r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("report.py: gnuplot failed: " + r.stderr, file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    main()
