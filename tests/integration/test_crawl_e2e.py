#!/usr/bin/env python3
"""End-to-end crawl through ./run.sh against a generated 3-host site.

Generates a ~300-page site on 127.0.0.2/.3/.4 (fresh ports) plus two
off-scope hosts (127.0.0.5, and 127.0.0.2 on another port: scope is
host AND port), serves it with tests/site/server.py, runs
  ./run.sh --allow-private --delay 0 --host-connections 4 --out OUT SEEDS...
from the repo root (timeout 300 s) and checks pages.jsonl and the server's
own request log against the generator's BFS manifest.

Run: python3 tests/integration/test_crawl_e2e.py   (exit 0 = pass)
Env: TRAWLER_KEEP_TMP=1 keeps the temp dir; E2E_PAGES / E2E_SEED override
the site size and seed; TRAWLER_BROKERS / TRAWLER_REDIS are passed through
to run.sh (test.sh exports them).
"""

import collections
import os
import re
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from sitecommon import canonical_url, media_type  # noqa: E402

PAGES = int(os.environ.get("E2E_PAGES", "300"))
SEED = int(os.environ.get("E2E_SEED", "20240601"))
TIMEOUT = 300
IN_SCOPE = ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"]
OFF_SCOPE = ["127.0.0.5:0", "127.0.0.2:0"]
COMPLETION_RE = re.compile(r"complet|finished", re.I)


def is_robots(url):
    return urlsplit(url).path == "/robots.txt"


def norm_title(t):
    return " ".join(t.split()) if isinstance(t, str) else t


def annotate(url, expected):
    c = canonical_url(url) if isinstance(url, str) else None
    if c and c != url and c in expected:
        return f"{url}   (non-canonical form of {c})"
    return str(url)


def check_manifest(chk, m):
    """The generated site really has every feature the test relies on."""
    r = m["reachable"]
    feats = {
        "404 pages": any(v["status"] == 404 for v in r.values()),
        "non-HTML (pdf, png, txt)": {"application/pdf", "image/png",
                                     "text/plain"} <= {media_type(v["content_type"])
                                                       for v in r.values()},
        "query-string variants": sum("item.html?id=" in u for u in r) >= 3,
        "every seeded host reachable": {urlsplit(u).netloc for u in r} ==
        {urlsplit(s).netloc for s in m["seeds"]},
        "off-scope links": len(m["offscope_urls"]) > 0,
        "traps/orphans not reachable": len(m["unreachable_files"]) > 0,
    }
    missing = [k for k, ok in feats.items() if not ok]
    chk.check(not missing and len(r) >= PAGES,
              f"generated site has all features ({len(r)} reachable URLs)",
              f"missing features: {missing}")


def check_pages(chk, m, records, errors):
    expected = m["reachable"]
    seeds = set(m["seeds"])
    chk.check(not errors, "pages.jsonl: every line is a JSON object",
              lib.show_list(errors))

    bad_fields = []
    for rec in records:
        url = rec.get("url")
        probs = []
        if not isinstance(url, str):
            probs.append("url missing")
        if not isinstance(rec.get("status"), int) or isinstance(rec.get("status"), bool):
            probs.append("status not an int")
        if "content_type" not in rec:
            probs.append("content_type missing")
        if not isinstance(rec.get("depth"), int):
            probs.append("depth not an int")
        if not isinstance(rec.get("links"), int) or rec.get("links", -1) < 0:
            probs.append("links not an int >= 0")
        exp = expected.get(url)
        if exp and exp["status"] == 200 and \
                media_type(exp["content_type"]) == "text/html" and \
                not isinstance(rec.get("title"), str):
            probs.append("title missing on an HTML page")
        if probs:
            bad_fields.append(f"{url}: {', '.join(probs)}")
    chk.check(not bad_fields, "pages.jsonl: required fields present "
              "(url, status, content_type, depth, links, title)",
              lib.show_list(bad_fields))

    counts = collections.Counter(r.get("url") for r in records)
    got = set(counts)
    robots = {u for u in got if isinstance(u, str) and is_robots(u)
              and u not in expected}
    if robots:
        chk.info(f"ignored {len(robots)} robots.txt record(s) in pages.jsonl")
    missing = sorted(set(expected) - got)
    extra = sorted(got - set(expected) - robots, key=str)
    chk.check(not missing and not extra,
              f"pages.jsonl URL set == manifest reachable set "
              f"({len(expected)} expected, {len(got - robots)} got)",
              (f"MISSING from pages.jsonl ({len(missing)}):\n"
               + lib.show_list(missing) + "\n" if missing else "")
              + (f"UNEXPECTED in pages.jsonl ({len(extra)}):\n"
                 + lib.show_list(annotate(u, expected) for u in extra)
                 if extra else ""))
    dups = sorted(f"{u} x{n}" for u, n in counts.items() if n > 1)
    chk.check(not dups, "pages.jsonl: each URL exactly once",
              lib.show_list(dups))

    by_url = {}
    for rec in records:
        by_url.setdefault(rec.get("url"), rec)
    status_bad, type_bad, title_bad, depth_bad, links_bad = [], [], [], [], []
    for url, exp in expected.items():
        rec = by_url.get(url)
        if rec is None:
            continue
        if rec.get("status") != exp["status"]:
            status_bad.append(f"{url}: status {rec.get('status')} "
                              f"(error {rec.get('error')!r}), expected "
                              f"{exp['status']}")
        if exp["status"] == 200 and media_type(rec.get("content_type")) != \
                media_type(exp["content_type"]):
            type_bad.append(f"{url}: content_type {rec.get('content_type')!r}"
                            f", expected {exp['content_type']!r}")
        if "title" in exp and norm_title(rec.get("title")) != exp["title"]:
            title_bad.append(f"{url}: title {rec.get('title')!r}, expected "
                             f"{exp['title']!r}")
        d = rec.get("depth")
        if isinstance(d, int) and ((url in seeds and d != 0)
                                   or d < exp["depth"]):
            depth_bad.append(f"{url}: depth {d}, shortest path "
                             f"{exp['depth']}")
        if "links" in exp and rec.get("links") != exp["links"]:
            links_bad.append(f"{url}: links {rec.get('links')}, the page has "
                             f"{exp['links']} distinct http(s) links")
    n404 = sum(1 for v in expected.values() if v["status"] == 404)
    chk.check(not status_bad, f"expected HTTP status for every URL "
              f"({n404} missing pages reported as 404)", lib.show_list(status_bad))
    chk.check(not type_bad, "content type matches for every 200 response",
              lib.show_list(type_bad))
    chk.check(not title_bad, "titles match for HTML pages",
              lib.show_list(title_bad))
    chk.check(not depth_bad, "depth: seeds 0, never below the shortest path",
              lib.show_list(depth_bad))
    chk.check(not links_bad, "links == number of distinct http(s) links "
              "on each HTML page",
              lib.show_list(links_bad))


def check_server_log(chk, m, log):
    expected = m["reachable"]
    offscope = set(m["offscope_hosts"])
    off_req = [f"{r['method']} {lib.log_url(r)}" for r in log
               if r["host"] in offscope]
    chk.check(not off_req, f"server log: nothing requested on the off-scope "
              f"hosts {sorted(offscope)}", lib.show_list(off_req))
    frag = [f"{r['method']} {lib.log_url(r)}" for r in log if "#" in r["path"]]
    chk.check(not frag, "server log: no request carries a #fragment",
              lib.show_list(frag))
    methods = [f"{r['method']} {lib.log_url(r)}" for r in log
               if r["method"] not in ("GET", "HEAD")]
    chk.check(not methods, "server log: only GET and HEAD",
              lib.show_list(methods))

    fetches = collections.Counter(lib.log_url(r) for r in log
                                  if r["host"] not in offscope
                                  and r["method"] in ("GET", "HEAD"))
    robots = {u: n for u, n in fetches.items() if is_robots(u)
              and u not in expected}
    if robots:
        chk.info(f"robots.txt requests (tolerated): {robots}")
    not_once = [f"{u}: requested {fetches.get(u, 0)} times"
                for u in sorted(expected) if fetches.get(u, 0) != 1]
    chk.check(not not_once, f"server log: every reachable URL requested "
              f"exactly once ({len(expected)} URLs)", lib.show_list(not_once))
    extra = sorted(u for u in fetches if u not in expected and u not in robots)
    chk.check(not extra, "server log: no unreachable URL requested",
              lib.show_list(annotate(u, expected) for u in extra))
    if log:
        t0 = min(r["t_start"] for r in log)
        t1 = max(r["t_end"] for r in log)
        conns = len({(r["host"], r["conn"]) for r in log})
        chk.info(f"server saw {len(log)} requests on {conns} connections "
                 f"over {t1 - t0:.1f}s")


def main():
    chk = lib.Checker("integration.test_crawl_e2e")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-e2e-")
    chk.info(f"temp dir {tmp}")
    srv = lib.SiteServer(tmp / "site", IN_SCOPE + OFF_SCOPE,
                         tmp / "requests.jsonl")
    res = None
    try:
        hps = srv.start()
        hosts, off = hps[:len(IN_SCOPE)], hps[len(IN_SCOPE):]
        chk.info(f"in scope {hosts}, off scope {off}")
        m = lib.generate_site(tmp / "site", hosts, PAGES, seed=SEED,
                              offscope=off)
        check_manifest(chk, m)

        outdir = tmp / "out"
        args = ["--allow-private", "--delay", "0", "--host-connections", "4",
                "--out", str(outdir), *m["seeds"]]
        chk.info("running ./run.sh " + " ".join(args))
        res = lib.run_trawler(args, timeout=TIMEOUT, echo=True)
    except Exception:
        chk.check(False, "test setup (server, site generator, run.sh start)",
                  traceback.format_exc())
    finally:
        server_rc = srv.stop()
    if res is None:
        rc = chk.summary()
        lib.cleanup_tmpdir(tmp, False)
        return rc
    chk.check(not res.timed_out and res.rc == 0,
              f"run.sh exits 0 within {TIMEOUT}s", res.describe())
    chk.check(COMPLETION_RE.search(res.output),
              "run.sh output mentions completion", res.describe(20))
    pages_path = Path(outdir) / "pages.jsonl"
    if chk.check(pages_path.is_file(), f"{pages_path} exists"):
        records, errors = lib.read_jsonl(pages_path)
        check_pages(chk, m, records, errors)
    check_server_log(chk, m, srv.read_log())
    left = lib.leftover_processes(res.marker, grace=15)
    chk.check(not left, "every process run.sh started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)
    chk.check(server_rc == 0, "test server stopped cleanly on SIGTERM",
              f"exit status {server_rc}")
    n = len(m["reachable"])
    chk.info(f"run.sh wall time {res.elapsed:.1f}s for {n} URLs "
             f"({n / max(res.elapsed, 1e-9):.1f} URLs/s)")
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
