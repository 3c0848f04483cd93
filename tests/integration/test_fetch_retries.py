#!/usr/bin/env python3
"""Retries with backoff, Retry-After and timeouts (issue 3, "Retries").

One crawl, one host per case (127.0.0.21-27) so that a host deferred by a
retry or a Retry-After does not delay the other cases:
  ./run.sh --allow-private --delay 0 --host-connections 1 --out OUT SEEDS
  with TRAWLER_MAX_ATTEMPTS=3 TRAWLER_RETRY_BASE=0.2 TRAWLER_RETRY_MAX=10
       TRAWLER_TIMEOUT=2
Cases (seed -> expected, from pages.jsonl AND the server's request log):
  /__503then200/T/2   503, 503, 200 -> status 200, attempts 3; 3 requests
  /__429/T/2          429 + Retry-After: 2, then 200 -> status 200,
                      attempts 2; the 2nd request starts >= 2 s after the
                      1st response ended (Retry-After > the 0.2 s backoff)
  /__status/500/T     always 500 -> status 500, attempts 3; exactly 3
                      requests, spaced by a growing backoff (base 0.2 s,
                      doubling; at least half of it, jitter allowed)
  /__status/404/T     404 is final -> status 404, attempts 1 (or absent:
                      pages.jsonl may omit a first-try attempts); 1 request
  /__stall/T          never answers -> status 0, error "timeout",
                      attempts 3; 3 requests, each abandoned by the client
                      ~2 s (TRAWLER_TIMEOUT) after it started
  /__slowbody/8/T     headers at once, body over 8 s -> status 0, error
                      "timeout" (the total timeout, not only an idle one);
                      3 requests, each abandoned after ~2 s
  /index.html         a plain page on its own host -> 200, attempts 1,
                      fetched while the other hosts wait for their retries
The crawl completes (run.sh exits 0) with exactly one record per seed.

Run: python3 tests/integration/test_fetch_retries.py   (exit 0 = pass)
"""

import os
import sys
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

MAX_ATTEMPTS = 3
RETRY_BASE = 0.2
TIMEOUT = 2.0
RETRY_AFTER = 2
SLACK = 0.010
ENV = {"TRAWLER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
       "TRAWLER_RETRY_BASE": str(RETRY_BASE),
       "TRAWLER_RETRY_MAX": "10",
       "TRAWLER_TIMEOUT": str(TIMEOUT)}
HOSTS = {"503": "127.0.0.21:0", "429": "127.0.0.22:0", "500": "127.0.0.23:0",
         "404": "127.0.0.24:0", "stall": "127.0.0.25:0",
         "slowbody": "127.0.0.26:0", "plain": "127.0.0.27:0"}
RUN_TIMEOUT = 120


def n_requests_check(chk, name, reqs, n, t0):
    chk.check(len(reqs) == n, f"{name}: server saw exactly {n} request(s)",
              f"expected {n}, saw {len(reqs)}:\n"
              + "\n".join("  " + lib.fmt_req(r, t0) for r in reqs))


def main():
    chk = lib.Checker("integration.test_fetch_retries")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-retries-")
    chk.info(f"temp dir {tmp}")
    tok = uuid.uuid4().hex[:10]
    srv = lib.SiteServer(tmp / "site", list(HOSTS.values()), tmp / "requests.jsonl")
    res = None
    try:
        with lib.shared_services(chk):
            hps = dict(zip(HOSTS, srv.start()))
            paths = {"503": f"/__503then200/{tok}/2",
                     "429": f"/__429/{tok}/{RETRY_AFTER}",
                     "500": f"/__status/500/{tok}",
                     "404": f"/__status/404/{tok}",
                     "stall": f"/__stall/{tok}",
                     "slowbody": f"/__slowbody/8/{tok}",
                     "plain": "/index.html"}
            lib.write_site_file(tmp / "site", hps["plain"], "index.html",
                                lib.html_doc("plain page"))
            urls = {k: f"http://{hps[k]}{p}" for k, p in paths.items()}
            out = tmp / "out"
            args = ["--allow-private", "--delay", "0", "--host-connections", "1",
                    "--out", str(out), *urls.values()]
            chk.info("env " + " ".join(f"{k}={v}" for k, v in ENV.items()))
            chk.info("./run.sh " + " ".join(args))
            res = lib.run_trawler(args, timeout=RUN_TIMEOUT, env_extra=ENV)
    except Exception:
        chk.check(False, "test setup (server, services, run.sh)",
                  traceback.format_exc())
    finally:
        srv.stop()
    if res is None:
        rc = chk.summary()
        lib.cleanup_tmpdir(tmp, False)
        return rc

    chk.check(not res.timed_out and res.rc == 0,
              f"run.sh exits 0: the crawl completes ({res.elapsed:.1f}s)",
              res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    if left:
        lib.kill_marker_processes(res.marker)
    chk.check(not left, "every process run.sh started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))

    pages = out / "pages.jsonl"
    records = []
    if chk.check(pages.is_file(), f"{pages} exists"):
        records, errors = lib.read_jsonl(pages)
        chk.check(not errors, "pages.jsonl is JSON lines", lib.show_list(errors))
    log = srv.read_log()
    t0 = min((r["t_start"] for r in log), default=0)
    reqs = {k: lib.requests_to(log, hps[k], paths[k]) for k in paths}

    # 503, 503, 200
    lib.check_record(chk, "503 twice then 200: status 200, attempts 3, title",
                     records, urls["503"],
                     {"status": 200, "attempts": 3, "title": f"503then200 {tok}",
                      "error": lib.ABSENT})
    n_requests_check(chk, "503 twice then 200", reqs["503"], 3, t0)
    chk.check([r["status"] for r in reqs["503"]] == [503, 503, 200],
              "503 twice then 200: the server answered 503, 503, 200",
              f"statuses seen: {[r['status'] for r in reqs['503']]}")

    # 429 + Retry-After
    lib.check_record(chk, "429 then 200: status 200, attempts 2", records,
                     urls["429"], {"status": 200, "attempts": 2,
                                   "title": f"429 {tok}", "error": lib.ABSENT})
    n_requests_check(chk, "429 with Retry-After", reqs["429"], 2, t0)
    if len(reqs["429"]) >= 2:
        a, b = reqs["429"][:2]
        wait = b["t_start"] - a["t_end"]
        chk.check(wait >= RETRY_AFTER - SLACK,
                  f"429: Retry-After honoured: 2nd request {wait:.3f}s after "
                  f"the 429 response (>= {RETRY_AFTER}s)",
                  f"expected >= {RETRY_AFTER}s (Retry-After: {RETRY_AFTER}, "
                  f"longer than the {RETRY_BASE}s backoff)\n  "
                  + lib.fmt_req(a, t0) + "\n  " + lib.fmt_req(b, t0))

    # permanent 500
    lib.check_record(chk, f"permanent 500: final status 500 after "
                     f"{MAX_ATTEMPTS} attempts", records, urls["500"],
                     {"status": 500, "attempts": MAX_ATTEMPTS,
                      "error": lib.ABSENT})
    n_requests_check(chk, f"permanent 500 (TRAWLER_MAX_ATTEMPTS={MAX_ATTEMPTS})",
                     reqs["500"], MAX_ATTEMPTS, t0)
    r500 = reqs["500"]
    if len(r500) == MAX_ATTEMPTS:
        waits = [b["t_start"] - a["t_end"] for a, b in zip(r500, r500[1:])]
        lows = [RETRY_BASE * 2 ** i * 0.5 for i in range(len(waits))]
        highs = [RETRY_BASE * 2 ** i * 2 + 1.0 for i in range(len(waits))]
        ok = all(lo <= w <= hi for w, lo, hi in zip(waits, lows, highs))
        chk.check(ok, "permanent 500: exponential backoff between attempts "
                  f"({', '.join(f'{w:.3f}s' for w in waits)})",
                  "expected wait i (base %.1fs x 2^i, jitter allowed) in %s; got %s\n"
                  % (RETRY_BASE, [f"{lo:.2f}..{hi:.2f}s" for lo, hi in zip(lows, highs)],
                     [f"{w:.3f}s" for w in waits])
                  + "\n".join("  " + lib.fmt_req(r, t0) for r in r500))

    # 404 final
    lib.check_record(chk, "404 is final: status 404, attempts 1", records,
                     urls["404"], {"status": 404, "attempts": lib.AbsentOr(1),
                                   "error": lib.ABSENT})
    n_requests_check(chk, "404 is not retried", reqs["404"], 1, t0)

    # stalled server and trickling body: timeouts, retried
    for key, what in (("stall", "stalled server (never answers)"),
                      ("slowbody", "body trickling for 8s")):
        lib.check_record(chk, f"{what}: status 0, error timeout, attempts "
                         f"{MAX_ATTEMPTS}", records, urls[key],
                         {"status": 0, "error": "timeout",
                          "attempts": MAX_ATTEMPTS})
        n_requests_check(chk, f"{what}: timeouts are retried", reqs[key],
                         MAX_ATTEMPTS, t0)
        held = [r["t_end"] - r["t_start"] for r in reqs[key]]
        chk.check(held and all(TIMEOUT - 0.1 <= h <= TIMEOUT + 1.5 for h in held),
                  f"{what}: the client gave up after ~{TIMEOUT:g}s "
                  f"(TRAWLER_TIMEOUT) each time",
                  f"expected each request to end {TIMEOUT - 0.1:.1f}..{TIMEOUT + 1.5:.1f}s "
                  f"after it started (server side), got "
                  f"{[f'{h:.2f}s' for h in held]}\n"
                  + "\n".join("  " + lib.fmt_req(r, t0) for r in reqs[key]))

    # other work is not blocked
    lib.check_record(chk, "plain page on its own host: 200, attempts 1",
                     records, urls["plain"],
                     {"status": 200, "attempts": lib.AbsentOr(1),
                      "title": "plain page"})
    if reqs["plain"] and reqs["stall"]:
        chk.check(reqs["plain"][0]["t_start"] < reqs["stall"][-1]["t_start"],
                  "retries do not block other hosts: the plain page was "
                  "fetched before the stalled URL's last attempt",
                  f"plain: {lib.fmt_req(reqs['plain'][0], t0)}\nstall: "
                  + "\n       ".join(lib.fmt_req(r, t0) for r in reqs["stall"]))

    seeds = set(urls.values())
    extra = [lib.short_record(r) for r in records
             if r.get("url") not in seeds and r.get("requested_url") not in seeds
             and not str(r.get("url", "")).endswith("/robots.txt")]
    chk.check(not extra, "pages.jsonl: nothing but the seeds (one final "
              "record each, no record per attempt)", lib.show_list(extra))
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
