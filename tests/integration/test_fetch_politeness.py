#!/usr/bin/env python3
"""Per-host politeness measured at the server (issue 3, "Must show").

Run A: 4 hosts x 40 pages (127.0.0.11-14) and a deliberately slow fifth host
(127.0.0.15, every response delayed SLOW_SECS by the server, 20 pages):
  ./run.sh --allow-private --delay 0.3 --host-connections 1 --producers 2
From the server's own request log, per host:
  - the minimum gap between request starts >= 0.3 s (10 ms clock slack),
  - at most 1 request in progress at any instant,
  - the slow host does not slow the others: each normal host's last request
    ends before the slow host's last request starts, and each normal host's
    crawl span stays near its politeness minimum (pages x delay).
Run B: 2 hosts x 16 pages (127.0.0.16-17), every response delayed 0.6 s:
  ./run.sh --allow-private --delay 0.2 --host-connections 2 --producers 2
  - concurrency 2 per host is reached and never exceeded, gaps >= 0.2 s.
robots.txt requests (404 here) count like any request: the server sees them.
Concurrent open TCP connections per host are reported for information (an
idle keep-alive connection left behind by a rebalance is not a request).

Run: python3 tests/integration/test_fetch_politeness.py   (exit 0 = pass)
Env: TRAWLER_KEEP_TMP=1 keeps the temp dir; TRAWLER_BROKERS/TRAWLER_REDIS
are used when set (else Kafka and Redis are started once for both runs).
"""

import collections
import os
import statistics
import sys
import traceback
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SLACK = 0.010           # clock slack on gaps (s)
A_DELAY = 0.3
A_PAGES = 40            # per normal host (index + 39)
A_HOSTS = ["127.0.0.11:0", "127.0.0.12:0", "127.0.0.13:0", "127.0.0.14:0"]
SLOW_HOST = "127.0.0.15:0"
SLOW_SECS = 1.0
SLOW_PAGES = 20
B_DELAY = 0.2
B_CONNS = 2
B_PAGES = 16
B_HOSTS = ["127.0.0.16:0", "127.0.0.17:0"]
B_SLOW = 0.6
RUN_TIMEOUT = 150


def run(chk, name, args, timeout):
    chk.info(f"[{name}] ./run.sh " + " ".join(args))
    res = lib.run_trawler(args, timeout=timeout)
    chk.check(not res.timed_out and res.rc == 0,
              f"[{name}] run.sh exits 0 within {timeout}s "
              f"(took {res.elapsed:.1f}s)", res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    if left:
        lib.kill_marker_processes(res.marker)
    chk.check(not left, f"[{name}] every process run.sh started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    return res


def check_results(chk, name, outdir, expected):
    """pages.jsonl: every expected URL exactly once with status 200 and its
    title; nothing else but robots.txt."""
    path = outdir / "pages.jsonl"
    if not chk.check(path.is_file(), f"[{name}] {path} exists"):
        return
    recs, errors = lib.read_jsonl(path)
    chk.check(not errors, f"[{name}] pages.jsonl is JSON lines", lib.show_list(errors))
    counts = collections.Counter(r.get("url") for r in recs)
    by_url = {r.get("url"): r for r in recs}
    bad = []
    for url, title in sorted(expected.items()):
        r = by_url.get(url)
        if counts[url] != 1:
            bad.append(f"{url}: {counts[url]} records, expected 1")
        elif r.get("status") != 200 or r.get("title") != title:
            bad.append(f"{url}: expected status 200, title {title!r}; got "
                       f"{lib.short_record(r)}")
    extra = sorted(u for u in counts if u not in expected
                   and urlsplit(str(u)).path != "/robots.txt")
    bad += [f"unexpected record: {lib.short_record(by_url[u])}" for u in extra]
    chk.check(not bad, f"[{name}] pages.jsonl: each of the {len(expected)} "
              "pages exactly once, status 200, right title", lib.show_list(bad))


def check_requests(chk, name, log, hosts, expected):
    """Server log: each page requested exactly once (GET), robots.txt at
    most once, nothing else."""
    bad = []
    want = collections.Counter(urlsplit(u).netloc + urlsplit(u).path
                               for u in expected)
    got = collections.Counter(r["host"] + r["path"] for r in log
                              if r["host"] in hosts)
    for key, n in sorted(got.items()):
        path = key[key.index("/"):]
        if path == "/robots.txt":
            if n > 1:
                bad.append(f"http://{key}: requested {n} times, expected at most 1")
        elif want.get(key, 0) != n:
            bad.append(f"http://{key}: requested {n} times, expected "
                       f"{want.get(key, 0)}")
    bad += [f"http://{k}: never requested" for k in sorted(want) if k not in got]
    chk.check(not bad, f"[{name}] server log: every page requested exactly "
              "once, nothing else (robots.txt at most once per host)",
              lib.show_list(bad))


def check_gaps(chk, name, recs_by_host, hosts, delay):
    for h in hosts:
        recs = recs_by_host.get(h, [])
        gaps = sorted(lib.start_gaps(recs), key=lambda g: g[0])
        if not gaps:
            chk.check(False, f"[{name}] {h}: min gap between request starts "
                      f">= {delay}s", f"only {len(recs)} request(s) seen")
            continue
        t0 = recs[0]["t_start"]
        worst = gaps[:3]
        chk.check(gaps[0][0] >= delay - SLACK,
                  f"[{name}] {h}: min gap between request starts "
                  f"{gaps[0][0]:.3f}s >= {delay}s (-{SLACK * 1000:.0f} ms slack; "
                  f"{len(recs)} requests)",
                  "expected every gap >= %.3fs; smallest gaps seen:\n" % (delay - SLACK)
                  + "\n".join(f"  {g:.3f}s between\n    {lib.fmt_req(a, t0)}\n"
                              f"    {lib.fmt_req(b, t0)}" for g, a, b in worst))


def check_concurrency(chk, name, recs_by_host, hosts, limit, must_reach):
    for h in hosts:
        recs = recs_by_host.get(h, [])
        n, witness = lib.request_concurrency(recs)
        t0 = recs[0]["t_start"] if recs else 0
        ok = n <= limit and (not must_reach or n == limit)
        want = f"== {limit}" if must_reach else f"<= {limit}"
        chk.check(ok, f"[{name}] {h}: max concurrent requests {n} {want}",
                  f"expected at most {limit} requests in progress at once"
                  + (f" and {limit} reached" if must_reach else "")
                  + f"; seen {n}" + (":\n" + "\n".join(
                      "  " + lib.fmt_req(r, t0) for r in witness) if witness else ""))


def info_connections(chk, name, conns, hosts, limit):
    by = collections.defaultdict(list)
    for c in conns:
        if c["host"] in hosts:
            by[c["host"]].append((c["t_open"], c["t_close"], c))
    for h in hosts:
        n, _ = lib.max_concurrency(by.get(h, []))
        used = sum(1 for _, _, c in by.get(h, []) if c["requests"])
        chk.info(f"[{name}] {h}: {len(by.get(h, []))} TCP connection(s) "
                 f"({used} carried requests), at most {n} open at once "
                 f"(limit {limit} applies to requests in flight)")


def run_a(chk, srv, site, tmp, hosts, slow):
    expected = {}
    for i, h in enumerate(hosts):
        expected.update(lib.write_linked_site(site, h, A_PAGES, f"A{i}"))
    expected.update(lib.write_linked_site(site, slow, SLOW_PAGES, "slow"))
    seeds = [f"http://{h}/" for h in hosts + [slow]]
    out = tmp / "out-a"
    res = run(chk, "A", ["--allow-private", "--delay", str(A_DELAY),
                         "--host-connections", "1", "--producers", "2",
                         "--out", str(out), *seeds], RUN_TIMEOUT)
    log = srv.read_log()
    check_results(chk, "A", out, expected)
    check_requests(chk, "A", log, set(hosts + [slow]), expected)
    rb = lib.by_host(log)
    check_gaps(chk, "A", rb, hosts + [slow], A_DELAY)
    check_concurrency(chk, "A", rb, hosts + [slow], 1, must_reach=False)
    info_connections(chk, "A", srv.read_conn_log(), hosts + [slow], 1)

    # The slow host does not hold the others back.
    srecs = rb.get(slow, [])
    if not srecs or not all(rb.get(h) for h in hosts):
        chk.check(False, "[A] slow host vs the others: requests seen on every host",
                  f"requests per host: { {h: len(rb.get(h, [])) for h in hosts + [slow]} }")
        return res
    t0 = min(r["t_start"] for recs in rb.values() for r in recs)
    slow_last = srecs[-1]
    lines, late = [], []
    for h in hosts:
        last = rb[h][-1]
        lines.append(f"  {h}: last request ends at +{last['t_end'] - t0:.2f}s")
        if last["t_end"] >= slow_last["t_start"]:
            late.append(h)
    chk.check(not late, "[A] the 4 normal hosts finish while the slow host "
              f"is still being crawled (its last request starts at "
              f"+{slow_last['t_start'] - t0:.2f}s)",
              f"expected every normal host's last request to end before "
              f"+{slow_last['t_start'] - t0:.2f}s; late: {late}\n" + "\n".join(lines))
    slow_span = slow_last["t_end"] - srecs[0]["t_start"]
    chk.info(f"[A] slow host {slow}: {len(srecs)} requests over {slow_span:.1f}s")
    for h in hosts:
        recs = rb[h]
        span = recs[-1]["t_start"] - recs[0]["t_start"]
        floor = (len(recs) - 1) * A_DELAY
        limit = floor * 1.5 + 2.0
        med = statistics.median(g for g, _, _ in lib.start_gaps(recs))
        chk.check(span <= limit,
                  f"[A] {h}: throughput not reduced by the slow host: "
                  f"{len(recs)} requests in {span:.2f}s (politeness minimum "
                  f"{floor:.1f}s, allowed <= {limit:.1f}s; median gap {med:.3f}s)",
                  f"expected the first-to-last request span <= 1.5 x "
                  f"{len(recs) - 1} x {A_DELAY}s + 2s = {limit:.1f}s, got "
                  f"{span:.2f}s (median gap {med:.3f}s; the slow host answers "
                  f"every request after {SLOW_SECS}s)")
    return res


def run_b(chk, srv, site, tmp, hosts):
    expected = {}
    for i, h in enumerate(hosts):
        expected.update(lib.write_linked_site(site, h, B_PAGES, f"B{i}"))
    seeds = [f"http://{h}/" for h in hosts]
    out = tmp / "out-b"
    res = run(chk, "B", ["--allow-private", "--delay", str(B_DELAY),
                         "--host-connections", str(B_CONNS), "--producers", "2",
                         "--out", str(out), *seeds], RUN_TIMEOUT)
    log = [r for r in srv.read_log() if r["host"] in hosts]
    check_results(chk, "B", out, expected)
    check_requests(chk, "B", log, set(hosts), expected)
    rb = lib.by_host(log)
    check_gaps(chk, "B", rb, hosts, B_DELAY)
    check_concurrency(chk, "B", rb, hosts, B_CONNS, must_reach=True)
    info_connections(chk, "B", srv.read_conn_log(), hosts, B_CONNS)
    return res


def main():
    chk = lib.Checker("integration.test_fetch_politeness")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-politeness-")
    chk.info(f"temp dir {tmp}")
    listens = A_HOSTS + [SLOW_HOST] + B_HOSTS
    extra = ["--slow", f"{SLOW_HOST}={SLOW_SECS}"]
    for h in B_HOSTS:
        extra += ["--slow", f"{h}={B_SLOW}"]
    srv = lib.SiteServer(tmp / "site", listens, tmp / "requests.jsonl",
                         extra_args=extra, conn_log=tmp / "conns.jsonl")
    try:
        with lib.shared_services(chk):
            hps = srv.start()
            a_hosts, slow, b_hosts = hps[:4], hps[4], hps[5:]
            chk.info(f"run A hosts {a_hosts}, slow host {slow} (+{SLOW_SECS}s "
                     f"per response); run B hosts {b_hosts} (+{B_SLOW}s)")
            run_a(chk, srv, tmp / "site", tmp, a_hosts, slow)
            run_b(chk, srv, tmp / "site", tmp, b_hosts)
    except Exception:
        chk.check(False, "test setup and runs", traceback.format_exc())
    finally:
        rc = srv.stop()
    chk.check(rc == 0, "test server stopped cleanly", f"exit status {rc}")
    result = chk.summary()
    lib.cleanup_tmpdir(tmp, result == 0)
    return result


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
