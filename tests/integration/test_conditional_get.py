#!/usr/bin/env python3
"""Conditional GET for re-crawls (--validators, trawlerctl seed --revisit).

Site on 127.0.0.41 served with --validators (static files carry an ETag
from their content and a Last-Modified from their mtime, and answer 304 to
a matching If-None-Match, or without one to an If-Modified-Since not
before the mtime): / links to p/1..p/5, each page links to / and the next.

Run 1 (TRAWLER_VALIDATORS=1): every page 200, no conditional header in
  the server log; the validator store lists the 6 pages.
Then p/2.html is rewritten (new title, mtime + 10 s).
Run 2 (TRAWLER_VALIDATORS=1 TRAWLER_REVISIT=1, a new crawl): every page
  request carries If-None-Match = the ETag run 1 saw and If-Modified-Since;
  the unchanged pages are recorded with status 304 and "not_modified":
  true (and no title), p/2 with 200 and its new title; each page exactly
  once. / answered 304, so its links were not read: the other pages came
  from the store (--revisit).
Run 3 (control, TRAWLER_REVISIT=1 without TRAWLER_VALIDATORS): no
  conditional header is sent and every page is 200 again.

Run: python3 tests/integration/test_conditional_get.py   (exit 0 = pass)
"""

import collections
import os
import subprocess
import sys
import traceback
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RUN_TIMEOUT = 120
PAGES = 6


def crawl(chk, tag, tmp, hp, env, srv):
    out = tmp / f"out-{tag}"
    before = len(srv.read_log())
    args = ["--allow-private", "--delay", "0", "--out", str(out), f"http://{hp}/"]
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
    chk.check(not errors, f"[{tag}] pages.jsonl is JSON lines", lib.show_list(errors))
    log = [r for r in srv.read_log()[before:] if r["host"] == hp and r["path"] != "/robots.txt"]
    return recs, log


def check_records(chk, tag, recs, want):
    """want: {url: (status, title or None, not_modified)}."""
    counts = collections.Counter(r.get("url") for r in recs)
    by = {r.get("url"): r for r in recs}
    bad = []
    for url, (status, title, nm) in sorted(want.items()):
        r = by.get(url)
        if counts[url] != 1:
            bad.append(f"{url}: {counts[url]} records, want 1")
            continue
        got = (r.get("status"), r.get("title"), r.get("not_modified", False))
        if got != (status, title, nm):
            bad.append(f"{url}: want status/title/not_modified {(status, title, nm)}, "
                       f"got {got}")
    bad += [f"unexpected record {lib.short_record(by[u])}" for u in counts
            if u not in want and urlsplit(str(u)).path != "/robots.txt"]
    chk.check(not bad, f"[{tag}] pages.jsonl: {len(want)} pages, each once, with the "
              "expected status / title / not_modified", lib.show_list(bad))


def store_cost(chk, hp):
    url = os.environ.get("TRAWLER_REDIS", "")
    key = "tr:val:{%s}" % hp
    try:
        n = subprocess.run(["redis-cli", "-u", url, "HLEN", key], capture_output=True,
                           text=True, timeout=10).stdout.strip()
        mem = subprocess.run(["redis-cli", "-u", url, "MEMORY", "USAGE", key, "SAMPLES", "0"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        chk.info(f"validator store {key}: {n} URLs, {mem} bytes "
                 f"({int(mem) / max(1, int(n)):.0f} bytes/URL, small-hash listpack encoding)")
        return int(n)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        chk.info(f"validator store size not measured: {e}")
        return None


def main():
    chk = lib.Checker("integration.test_conditional_get")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-condget-")
    srv = lib.SiteServer(tmp / "site", ["127.0.0.41:0"], tmp / "requests.jsonl",
                         extra_args=["--validators", "127.0.0.41:0"])
    try:
        with lib.shared_services(chk):
            hp = srv.start()[0]
            site = tmp / "site"
            pages = lib.write_linked_site(site, hp, PAGES, "cg")
            urls = sorted(pages)

            recs, log = crawl(chk, "1", tmp, hp, {"TRAWLER_VALIDATORS": "1"}, srv)
            check_records(chk, "1", recs, {u: (200, t, False) for u, t in pages.items()})
            cond = [lib.fmt_req(r) for r in log if "inm" in r or "ims" in r]
            chk.check(not cond, "[1] first crawl: no conditional header sent",
                      lib.show_list(cond))
            n = store_cost(chk, hp)
            chk.check(n is None or n == PAGES,
                      f"[1] the validator store lists the {PAGES} pages (HLEN {n})")
            etags = {}
            # the ETag each page had: what server.py derives from the content
            import hashlib
            for u in urls:
                rel = urlsplit(u).path.lstrip("/") or "index.html"
                data = (lib.host_root(site, hp) / rel).read_bytes()
                etags[urlsplit(u).path] = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'

            changed = f"http://{hp}/p/2.html"
            path = lib.write_site_file(site, hp, "p/2.html",
                                       lib.html_doc("cg page 2 changed", ["/", "/p/3.html"]))
            st = path.stat()
            os.utime(path, (st.st_atime, st.st_mtime + 10))

            recs, log = crawl(chk, "2", tmp, hp, {"TRAWLER_VALIDATORS": "1",
                                                  "TRAWLER_REVISIT": "1"}, srv)
            want = {u: (304, None, True) for u in urls}
            want[changed] = (200, "cg page 2 changed", False)
            check_records(chk, "2", recs, want)
            bad = []
            for r in log:
                exp = etags.get(r["path"] if r["path"] != "/" else "/")
                if r.get("inm") != exp or not r.get("ims"):
                    bad.append(f"{lib.fmt_req(r)}: If-None-Match {r.get('inm')!r} "
                               f"(want {exp!r}), If-Modified-Since {r.get('ims')!r}")
            per_path = collections.Counter(r["path"] for r in log)
            bad += [f"{p}: requested {k} times" for p, k in per_path.items() if k != 1]
            chk.check(log and not bad, f"[2] re-crawl: each of the {len(log)} page requests "
                      "carries If-None-Match (the stored ETag) and If-Modified-Since, once",
                      lib.show_list(bad))
            st304 = collections.Counter(r["status"] for r in log)
            chk.info(f"[2] server statuses: {dict(st304)}")

            recs, log = crawl(chk, "3", tmp, hp, {"TRAWLER_REVISIT": "1"}, srv)
            want = {u: (200, t, False) for u, t in pages.items()}
            want[changed] = (200, "cg page 2 changed", False)
            check_records(chk, "3", recs, want)
            cond = [lib.fmt_req(r) for r in log if "inm" in r or "ims" in r]
            chk.check(not cond, "[3] control without --validators: no conditional header",
                      lib.show_list(cond))
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
