#!/usr/bin/env python3
"""Politeness groups (--politeness domain|ip) measured at the server.

Host names are mapped to 127.0.0.x listeners with --resolve
(HOST:PORT:ADDR, as curl), so the producers fetch real names:

Run D (domain): a.grp.test -> 127.0.0.21:P1 and b.grp.test -> 127.0.0.22:P2,
  one registrable domain (grp.test) on two addresses.
  TRAWLER_POLITENESS=domain ./run.sh --delay 0.3 --producers 2 ...
  The server log of both listeners together: min gap between request
  starts >= 0.3 s, never two requests in flight.
Run I (ip): six names of six domains (a.one.test, b.two.test, ...) on
  127.0.0.23:P3 and 127.0.0.23:P4, one address.
  TRAWLER_POLITENESS=ip ./run.sh --delay 0.3 --producers 2 ...
  Both listeners of 127.0.0.23 together: min gap >= 0.3 s, never two in
  flight (the hosts are keyed apart in Kafka, so this holds only through
  the per-IP state the producers share in Redis).
Run C (control, default host mode) on the run-I setup: the same merged
  log must show a gap below 0.3 s, so the two checks above can fail.
Run S (ip, the system resolver): localhost:P5 and 127.0.0.1:P6, no
  --resolve, so "localhost" goes through getaddrinfo on the producers'
  lookup threads (its requests wait for the answer, the loop does not).
  Both listeners of 127.0.0.1 together: min gap >= 0.3 s, never two in
  flight; in host mode they would be two groups. Skipped with a message
  when this machine's first address for localhost is not 127.0.0.1.
Every page is fetched exactly once with status 200 in every run.

Run: python3 tests/integration/test_fetch_politeness_groups.py (exit 0 = pass)
"""

import collections
import os
import socket
import sys
import traceback
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SLACK = 0.010
DELAY = 0.3
PAGES = 6
RUN_TIMEOUT = 150


def name_site(site, listener, name, prefix):
    """A linked site served by `listener` and crawled as http://name/;
    returns {url: title} with the name in the URLs."""
    pages = lib.write_linked_site(site, listener, PAGES, prefix)
    return {u.replace(listener, name, 1): t for u, t in pages.items()}


def crawl(chk, tag, tmp, mode, names, resolve, expected, srv, listeners):
    out = tmp / f"out-{tag}"
    before = len(srv.read_log())
    env = {"TRAWLER_RESOLVE": ",".join(resolve)}
    if mode:
        env["TRAWLER_POLITENESS"] = mode
    args = ["--allow-private", "--delay", str(DELAY), "--host-connections", "1",
            "--producers", "2", "--out", str(out)] + [f"http://{n}/" for n in names]
    chk.info(f"[{tag}] {' '.join(f'{k}={v}' for k, v in env.items())} ./run.sh "
             + " ".join(args))
    res = lib.run_trawler(args, timeout=RUN_TIMEOUT, env_extra=env)
    chk.check(not res.timed_out and res.rc == 0,
              f"[{tag}] run.sh exits 0 within {RUN_TIMEOUT}s (took {res.elapsed:.1f}s)",
              res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    if left:
        lib.kill_marker_processes(res.marker)
    recs, errors = lib.read_jsonl(out / "pages.jsonl") if (out / "pages.jsonl").is_file() \
        else ([], ["pages.jsonl missing"])
    counts = collections.Counter(r.get("url") for r in recs)
    by_url = {r.get("url"): r for r in recs}
    bad = list(errors)
    for url, title in sorted(expected.items()):
        r = by_url.get(url)
        if counts[url] != 1 or r.get("status") != 200 or r.get("title") != title:
            bad.append(f"{url}: {counts[url]} record(s), want 1 with status 200 "
                       f"title {title!r}; got {lib.short_record(r) if r else None}")
    bad += [f"unexpected record {lib.short_record(by_url[u])}" for u in counts
            if u not in expected and urlsplit(str(u)).path != "/robots.txt"]
    chk.check(not bad, f"[{tag}] pages.jsonl: each of the {len(expected)} pages "
              "once, status 200", lib.show_list(bad))
    workers = collections.defaultdict(set)
    for r in recs:
        workers[urlsplit(str(r.get("url"))).netloc].add(r.get("worker"))
    crawl.workers = workers
    chk.info(f"[{tag}] producers per host: "
             + ", ".join(f"{h}: {sorted(map(str, w))}" for h, w in sorted(workers.items())))
    log = [r for r in srv.read_log()[before:] if r["host"] in listeners]
    log.sort(key=lambda r: r["t_start"])
    return log


def group_stats(log):
    gaps = sorted(lib.start_gaps(log), key=lambda g: g[0])
    conc, witness = lib.request_concurrency(log)
    return gaps, conc, witness


def check_group(chk, tag, what, log):
    gaps, conc, witness = group_stats(log)
    if not gaps:
        chk.check(False, f"[{tag}] {what}: requests seen", f"{len(log)} request(s)")
        return
    t0 = log[0]["t_start"]
    chk.check(gaps[0][0] >= DELAY - SLACK,
              f"[{tag}] {what}: min gap between request starts {gaps[0][0]:.3f}s "
              f">= {DELAY}s ({len(log)} requests over both listeners)",
              "smallest gaps:\n" + "\n".join(
                  f"  {g:.3f}s between\n    {a['host']} {lib.fmt_req(a, t0)}\n"
                  f"    {b['host']} {lib.fmt_req(b, t0)}" for g, a, b in gaps[:3]))
    chk.check(conc <= 1, f"[{tag}] {what}: at most 1 request in flight (seen {conc})",
              "\n".join(f"  {r['host']} {lib.fmt_req(r, t0)}" for r in witness))


def main():
    chk = lib.Checker("integration.test_fetch_politeness_groups")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-politegroups-")
    listens = ["127.0.0.21:0", "127.0.0.22:0", "127.0.0.23:0", "127.0.0.23:0",
               "127.0.0.1:0", "127.0.0.1:0"]
    srv = lib.SiteServer(tmp / "site", listens, tmp / "requests.jsonl")
    try:
        with lib.shared_services(chk):
            d1, d2, i1, i2, s1, s2 = srv.start()
            site = tmp / "site"
            # run D: one domain, two addresses
            na, nb = f"a.grp.test:{d1.split(':')[1]}", f"b.grp.test:{d2.split(':')[1]}"
            exp = name_site(site, d1, na, "Da")
            exp.update(name_site(site, d2, nb, "Db"))
            res = [f"{na}:{d1.split(':')[0]}", f"{nb}:{d2.split(':')[0]}"]
            log = crawl(chk, "D", tmp, "domain", [na, nb], res, exp, srv, {d1, d2})
            check_group(chk, "D", "domain grp.test", log)
            # run I: six names of six domains on one address (two listeners);
            # with more hosts than producers, several producers hold hosts of
            # the address, so only the shared per-IP state keeps the gap
            sites = {i1: lib.write_linked_site(site, i1, PAGES, "I1"),
                     i2: lib.write_linked_site(site, i2, PAGES, "I2")}
            names = {}
            for k, dom in enumerate(["a.one", "b.two", "c.three", "d.four", "e.five", "f.six"]):
                lst = i1 if k % 2 == 0 else i2
                names[f"{dom}.test:{lst.split(':')[1]}"] = lst
            exp = {}
            for n, lst in names.items():
                exp.update({u.replace(lst, n, 1): t for u, t in sites[lst].items()})
            res = [f"{n}:127.0.0.23" for n in names]
            na = list(names)
            log = crawl(chk, "I", tmp, "ip", na, res, exp, srv, {i1, i2})
            check_group(chk, "I", "address 127.0.0.23", log)
            held = set().union(*crawl.workers.values()) if crawl.workers else set()
            chk.info(f"[I] hosts of 127.0.0.23 were fetched by {len(held)} producer(s): "
                     f"{sorted(map(str, held))} (2 = the Redis slots were what kept the gap)")
            # run C: host mode on the same names and address (fresh crawl)
            log = crawl(chk, "C", tmp, None, na, res, exp, srv, {i1, i2})
            gaps, conc, _ = group_stats(log)
            chk.check(bool(gaps) and gaps[0][0] < DELAY - SLACK,
                      f"[C] control, host mode: the six hosts of 127.0.0.23 are "
                      f"separate groups (min merged gap "
                      f"{gaps[0][0] if gaps else float('nan'):.3f}s < {DELAY}s)",
                      "expected host mode to interleave the hosts closer than "
                      "the delay; the grouping checks above would then prove nothing")
            # run S: a name the producers resolve themselves
            first = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0][4][0]
            if first != "127.0.0.1":
                chk.info(f"[S] skipped: localhost resolves to {first} first here")
            else:
                ns = f"localhost:{s1.split(':')[1]}"
                exp = name_site(site, s1, ns, "S1")
                exp.update(lib.write_linked_site(site, s2, PAGES, "S2"))
                log = crawl(chk, "S", tmp, "ip", [ns, s2], [], exp, srv, {s1, s2})
                check_group(chk, "S", "address 127.0.0.1 (localhost resolved by "
                            "getaddrinfo, and a literal)", log)
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
