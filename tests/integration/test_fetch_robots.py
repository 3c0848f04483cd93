#!/usr/bin/env python3
"""robots.txt per RFC 9309 (issue 3, "robots.txt").

Run 1: three hosts, the same 12 pages on each (index + 11 linked paths),
  ./run.sh --allow-private --delay 0 --producers 2 --out OUT R1/ R2/ R3/
  R1 (127.0.0.41) robots.txt: a "User-agent: *" group with "Disallow: /"
     (must be ignored: a group names trawler) and a group for
     "otherbot" + "Trawler" (product token matched case-insensitively):
        Allow: /private/public/      Disallow: /private/
        Disallow: /*.htm$            Disallow: /tmp*/x
        Disallow: /eq/page           Allow: /eq/page   (tie -> allow)
        Crawl-delay: 1
     -> allowed: / /private/public/ok.html /old/page.html (.htm$ does not
                 match .html) /tmp1/y.html /eq/page.html /other.html
        disallowed: /private/secret.html /private/deep/x.html /old/page.htm
                    /dir/run.htm /tmp1/x/page.html /tmpfoo/x.html
     and, with --delay 0, its page requests start >= 1 s apart.
  R2 (127.0.0.42) no robots.txt (404) -> everything allowed.
  R3 (127.0.0.43) only "User-agent: *" / "Disallow: /private/" -> the three
     /private/ pages disallowed, the rest allowed.
  For every host: robots.txt requested exactly once (cached cluster-wide,
  even with 2 producers) and before any page; disallowed URLs never
  requested and reported once each with status 0, error robots_disallowed;
  allowed URLs requested once and reported with status 200.
Run 2: R5 (127.0.0.45) whose robots.txt answers 503 the first time (server
  --robots-status R5=503x1, then 404 = allow all) and R6 (127.0.0.46), a
  normal host; TRAWLER_ROBOTS_RETRY=3:
  - no page of R5 is requested before robots.txt is requested again, and
    that retry comes >= 3 s after the 503 (the host is held meanwhile);
  - then R5's pages are all fetched; robots.txt was requested exactly twice;
  - R6 is fully crawled before R5's retry (a host held by its robots.txt
    does not stall the others).

Both runs set TRAWLER_ROBOTS_TTL=120 (longer than a run; short enough that
a later run on the same host:port and Redis does not reuse the cache).

Run: python3 tests/integration/test_fetch_robots.py   (exit 0 = pass)
"""

import collections
import os
import sys
import traceback
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

SLACK = 0.010
CRAWL_DELAY = 1.0
ROBOTS_RETRY = 3.0
# Cached robots.txt outlives a run; a short TTL keeps a later run that gets
# the same host:port (same Redis under test.sh) from reusing this one's.
ROBOTS_TTL = "120"
RUN_TIMEOUT = 120

# Every page is HTML (.html or .htm), so that the content-type allow list
# plays no part here.
PAGES = ["/private/public/ok.html", "/old/page.html", "/tmp1/y.html",
         "/eq/page.html", "/other.html", "/private/secret.html",
         "/private/deep/x.html", "/old/page.htm", "/dir/run.htm",
         "/tmp1/x/page.html", "/tmpfoo/x.html"]
R1_ROBOTS = """# robots.txt for the trawler robots test
User-agent: *
Disallow: /

User-agent: otherbot
User-agent: Trawler
Allow: /private/public/
Disallow: /private/
Disallow: /*.htm$
Disallow: /tmp*/x
Disallow: /eq/page
Allow: /eq/page
Crawl-delay: 1

User-agent: someoneelse
Disallow: /other.html
"""
R1_DISALLOWED = {"/private/secret.html", "/private/deep/x.html", "/old/page.htm",
                 "/dir/run.htm", "/tmp1/x/page.html", "/tmpfoo/x.html"}
R3_ROBOTS = "User-agent: *\nDisallow: /private/\n"
R3_DISALLOWED = {"/private/public/ok.html", "/private/secret.html",
                 "/private/deep/x.html"}


def write_host(site, hp, robots):
    lib.write_site_file(site, hp, "index.html",
                        lib.html_doc(f"{hp} index", PAGES))
    for p in PAGES:
        lib.write_site_file(site, hp, p, lib.html_doc(f"{hp} {p}", ["/"]))
    if robots is not None:
        lib.write_site_file(site, hp, "robots.txt", robots)


def path_of(url):
    return urlsplit(url).path


def check_host(chk, hp, disallowed, recs, log, t0):
    """robots.txt once and first; allowed pages fetched once with 200;
    disallowed never requested and reported robots_disallowed."""
    allowed = ["/"] + [p for p in PAGES if p not in disallowed]
    hreqs = sorted((r for r in log if r["host"] == hp), key=lambda r: r["t_start"])
    robots = [r for r in hreqs if r["path"] == "/robots.txt"]
    chk.check(len(robots) == 1, f"{hp}: robots.txt requested exactly once "
              f"(2 producers)", f"saw {len(robots)}:\n"
              + "\n".join("  " + lib.fmt_req(r, t0) for r in robots))
    chk.check(hreqs and hreqs[0]["path"] == "/robots.txt",
              f"{hp}: robots.txt is the first request to the host",
              "first requests:\n" + "\n".join("  " + lib.fmt_req(r, t0)
                                              for r in hreqs[:3]))
    counts = collections.Counter(r["path"] for r in hreqs)
    bad = [f"{p}: requested {counts[p]}x, expected once" for p in allowed
           if counts[p] != 1]
    chk.check(not bad, f"{hp}: every allowed URL requested exactly once "
              f"({len(allowed)})", lib.show_list(bad))
    hit = [lib.fmt_req(r, t0) for r in hreqs if r["path"] in disallowed]
    chk.check(not hit, f"{hp}: no disallowed URL ever requested "
              f"({len(disallowed)} disallowed)", lib.show_list(hit))
    bad = []
    for p in allowed:
        url = f"http://{hp}{p}"
        rs = lib.records_for(recs, url)
        if len(rs) != 1 or rs[0].get("status") != 200 or rs[0].get("error"):
            bad.append(f"{url}: expected 1 record with status 200, got "
                       + ("; ".join(lib.short_record(r) for r in rs) or "none"))
    for p in sorted(disallowed):
        url = f"http://{hp}{p}"
        rs = lib.records_for(recs, url)
        if len(rs) != 1 or rs[0].get("status") != 0 or \
                rs[0].get("error") != "robots_disallowed":
            bad.append(f"{url}: expected 1 record with status 0, error "
                       "robots_disallowed, got "
                       + ("; ".join(lib.short_record(r) for r in rs) or "none"))
    chk.check(not bad, f"{hp}: pages.jsonl has status 200 for each allowed URL "
              "and status 0 + robots_disallowed for each disallowed one",
              lib.show_list(bad))
    return hreqs


def run1(chk, srv, site, tmp, r1, r2, r3):
    write_host(site, r1, R1_ROBOTS)
    write_host(site, r2, None)
    write_host(site, r3, R3_ROBOTS)
    out = tmp / "out1"
    args = ["--allow-private", "--delay", "0", "--producers", "2",
            "--out", str(out), f"http://{r1}/", f"http://{r2}/", f"http://{r3}/"]
    chk.info("[1] ./run.sh " + " ".join(args))
    res = lib.run_trawler(args, RUN_TIMEOUT,
                          env_extra={"TRAWLER_ROBOTS_TTL": ROBOTS_TTL})
    chk.check(not res.timed_out and res.rc == 0,
              f"[1] run.sh exits 0 ({res.elapsed:.1f}s)", res.describe())
    if lib.leftover_processes(res.marker, grace=15):
        lib.kill_marker_processes(res.marker)
    recs = []
    if (out / "pages.jsonl").is_file():
        recs, _ = lib.read_jsonl(out / "pages.jsonl")
    log = srv.read_log()
    t0 = min((r["t_start"] for r in log), default=0)
    h1 = check_host(chk, r1, R1_DISALLOWED, recs, log, t0)
    check_host(chk, r2, set(), recs, log, t0)
    check_host(chk, r3, R3_DISALLOWED, recs, log, t0)

    pages = [r for r in h1 if r["path"] != "/robots.txt"]
    gaps = sorted(lib.start_gaps(pages), key=lambda g: g[0])
    chk.check(gaps and gaps[0][0] >= CRAWL_DELAY - SLACK,
              f"{r1}: Crawl-delay: 1 honoured with --delay 0 (min gap between "
              f"page requests {gaps[0][0] if gaps else float('nan'):.3f}s)",
              f"expected every gap >= {CRAWL_DELAY}s; requests:\n"
              + "\n".join("  " + lib.fmt_req(r, t0) for r in h1))
    rob = [r for r in h1 if r["path"] == "/robots.txt"]
    if rob and pages:
        chk.info(f"{r1}: first page request {pages[0]['t_start'] - rob[0]['t_start']:.3f}s "
                 "after robots.txt")
    uas = {r.get("ua", "") for r in log}
    chk.check(uas and all("trawler" in u.lower() for u in uas),
              "requests carry a User-Agent with the 'trawler' product token",
              f"user agents seen: {sorted(uas)}")


def run2(chk, srv, site, tmp, r5, r6):
    pages5 = lib.write_linked_site(site, r5, 5, "R5")
    pages6 = lib.write_linked_site(site, r6, 10, "R6")
    out = tmp / "out2"
    env = {"TRAWLER_ROBOTS_RETRY": str(ROBOTS_RETRY), "TRAWLER_ROBOTS_TTL": ROBOTS_TTL}
    args = ["--allow-private", "--delay", "0", "--out", str(out),
            f"http://{r5}/", f"http://{r6}/"]
    chk.info(f"[2] env TRAWLER_ROBOTS_RETRY={ROBOTS_RETRY:g}; ./run.sh " + " ".join(args))
    res = lib.run_trawler(args, RUN_TIMEOUT, env_extra=env)
    chk.check(not res.timed_out and res.rc == 0,
              f"[2] run.sh exits 0 ({res.elapsed:.1f}s)", res.describe())
    if lib.leftover_processes(res.marker, grace=15):
        lib.kill_marker_processes(res.marker)
    recs = []
    if (out / "pages.jsonl").is_file():
        recs, _ = lib.read_jsonl(out / "pages.jsonl")
    log = srv.read_log()
    t0 = min((r["t_start"] for r in log if r["host"] in (r5, r6)), default=0)
    h5 = sorted((r for r in log if r["host"] == r5), key=lambda r: r["t_start"])
    h6 = sorted((r for r in log if r["host"] == r6), key=lambda r: r["t_start"])
    show5 = "requests to R5:\n" + "\n".join("  " + lib.fmt_req(r, t0) for r in h5)
    robots = [r for r in h5 if r["path"] == "/robots.txt"]
    chk.check(h5 and h5[0]["path"] == "/robots.txt" and h5[0]["status"] == 503,
              f"[2] {r5}: first request is robots.txt, answered 503", show5)
    chk.check(len(robots) == 2, f"[2] {r5}: robots.txt requested exactly twice "
              "(503, then the retry)", show5)
    if len(robots) >= 2:
        early = [r for r in h5 if r["path"] != "/robots.txt"
                 and r["t_start"] < robots[1]["t_start"]]
        chk.check(not early, f"[2] {r5}: no page requested before robots.txt "
                  "was retried", show5)
        wait = robots[1]["t_start"] - robots[0]["t_end"]
        chk.check(wait >= ROBOTS_RETRY - 0.05,
                  f"[2] {r5}: robots.txt retried {wait:.2f}s after the 503 "
                  f"(TRAWLER_ROBOTS_RETRY={ROBOTS_RETRY:g})", show5)
        if h6:
            chk.check(h6[-1]["t_end"] < robots[1]["t_start"],
                      f"[2] {r6} fully crawled while {r5} waited for its "
                      "robots.txt retry",
                      f"{r6} last request ends at +{h6[-1]['t_end'] - t0:.2f}s, "
                      f"R5's retry at +{robots[1]['t_start'] - t0:.2f}s")
    for hp, pages in ((r5, pages5), (r6, pages6)):
        bad = []
        for url, title in pages.items():
            rs = lib.records_for(recs, url)
            n = sum(1 for r in log if r["host"] == hp and r["path"] == path_of(url))
            if len(rs) != 1 or rs[0].get("status") != 200 or rs[0].get("title") != title \
                    or n != 1:
                bad.append(f"{url}: requested {n}x; records: "
                           + ("; ".join(lib.short_record(r) for r in rs) or "none"))
        chk.check(not bad, f"[2] {hp}: all {len(pages)} pages requested once "
                  "and reported 200", lib.show_list(bad))


def main():
    chk = lib.Checker("integration.test_fetch_robots")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-robots-")
    chk.info(f"temp dir {tmp}")
    listens = ["127.0.0.41:0", "127.0.0.42:0", "127.0.0.43:0",
               "127.0.0.45:0", "127.0.0.46:0"]
    srv = lib.SiteServer(tmp / "site", listens, tmp / "requests.jsonl",
                         extra_args=["--robots-status", "127.0.0.45:0=503x1"])
    try:
        with lib.shared_services(chk):
            r1, r2, r3, r5, r6 = srv.start()
            chk.info(f"R1={r1} R2={r2} R3={r3} R5={r5} (robots 503 once) R6={r6}")
            run1(chk, srv, tmp / "site", tmp, r1, r2, r3)
            run2(chk, srv, tmp / "site", tmp, r5, r6)
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
