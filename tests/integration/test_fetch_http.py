#!/usr/bin/env python3
"""HTTP details of trawler-producer (issue 3, "HTTP", "HEAD and Range",
"SSRF guard"), each case with its exact expected result.

Run 1 (127.0.0.31 = H, 127.0.0.32 = K):
  ./run.sh --allow-private --delay 0 --crawl-id ID --out OUT H/ K/__slow/6
  TRAWLER_MAX_BODY=100000 TRAWLER_MAX_REDIRECTS=5 TRAWLER_MAX_ATTEMPTS=1
  H's index links to:
    /__chain/T1/5       5 redirects (the limit) -> url .../0, requested_url
                        .../5, redirects 5, status 200, title; each hop once
    /__chain/T2/6       6 redirects -> status 0, error too_many_redirects;
                        hops 6..1 requested once, .../0 never
    /__redirect_loop/T  A -> B -> A ... -> too_many_redirects after exactly
                        6 requests (1 + MAX_REDIRECTS, one attempt)
    /__gzip/T /__deflate/T /__brotli/T   Content-Encoding bodies: status
                        200, title extracted, bytes == decoded size; the
                        request advertised the coding in Accept-Encoding
    /__big/300000/T     truncated true, bytes 100000 (the cap)
    /__big/100000/T     exactly the cap: bytes 100000, not truncated
    /__big/50000/T      bytes 50000, not truncated
    /files/report.pdf   fetched with HEAD (server: 1 HEAD, no GET);
                        method "HEAD", status 200, application/pdf, bytes 0
    /page.html          GET (no "method" field), http_version "1.1"
  While K's 6-second page holds the crawl open, the test runs
    build/trawlerctl seed --allow-private --range 0-99 H/__range/T
  -> status 206, partial true, bytes 100; the server saw Range: bytes=0-99.
Run 2 (SSRF guard), WITHOUT --allow-private, with
  TRAWLER_ALLOW_ADDRESS=127.0.0.33/32: the seed host 127.0.0.33 is crawled;
  its link /__redirect_to?url=http://127.0.0.1:Q/secret.html redirects to
  a listener on 127.0.0.1 -> that record has status 0, error
  blocked_address, and the 127.0.0.1 listener receives no request. A seed
  on 127.0.0.1 itself is refused by run.sh (non-zero exit, no request).

Brotli: the server uses the `brotli` CLI when on PATH (the test installs
Debian's brotli package when missing and running as root), else its
built-in encoder (a valid brotli stream of uncompressed meta-blocks).

Run: python3 tests/integration/test_fetch_http.py   (exit 0 = pass)
"""

import os
import re
import subprocess
import sys
import traceback
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

sys.path.insert(0, str(lib.SITE_DIR))
import server as site_server  # noqa: E402  (body builders, exact sizes)

MAX_BODY = 100000
MAX_REDIRECTS = 5
ENV1 = {"TRAWLER_MAX_BODY": str(MAX_BODY),
        "TRAWLER_MAX_REDIRECTS": str(MAX_REDIRECTS),
        "TRAWLER_MAX_ATTEMPTS": "1"}
# the held page keeps the crawl open; the Range seed is added once every
# other page is done, so this is its margin on a loaded machine
HOLD_SECS = 10
RUN_TIMEOUT = 120
PDF = b"%PDF-1.4\n% trawler test document\n" + b"0" * 2000 + b"\n%%EOF\n"
CODINGS = {"gzip": "gzip", "deflate": "deflate", "brotli": "br"}


def run1(chk, srv, site, tmp, H, K, tok):
    paths = {
        "chain5": f"/__chain/{tok}a/5", "chain6": f"/__chain/{tok}b/6",
        "loop": f"/__redirect_loop/{tok}",
        "gzip": f"/__gzip/{tok}", "deflate": f"/__deflate/{tok}",
        "brotli": f"/__brotli/{tok}",
        "big300": f"/__big/300000/{tok}", "big100": f"/__big/100000/{tok}",
        "big50": f"/__big/50000/{tok}",
        "pdf": "/files/report.pdf", "page": "/page.html",
    }
    lib.write_site_file(site, H, "index.html",
                        lib.html_doc("http cases", list(paths.values())))
    lib.write_site_file(site, H, "page.html", lib.html_doc("plain page"))
    lib.write_site_file(site, H, "files/report.pdf", PDF)
    url = {k: f"http://{H}{p}" for k, p in paths.items()}
    range_url = f"http://{H}/__range/{tok}"
    hold = f"http://{K}/__slow/{HOLD_SECS}"
    crawl_id = f"fetch-http-{tok}"
    out = tmp / "out1"
    args = ["--allow-private", "--delay", "0", "--crawl-id", crawl_id,
            "--out", str(out), f"http://{H}/", hold]
    chk.info("[1] env " + " ".join(f"{k}={v}" for k, v in ENV1.items()))
    chk.info("[1] ./run.sh " + " ".join(args))

    seed = None
    with lib.run_trawler_bg(args, RUN_TIMEOUT, env_extra=ENV1) as bg:
        # The server logs a request when it ends, so the held page's log
        # line means the hold is over. Seed while only the held page is
        # pending instead (Redis counts), well inside the hold.
        def only_hold_left():
            r = subprocess.run([str(lib.trawlerctl()), "status", "--crawl-id", crawl_id],
                               capture_output=True, text=True, timeout=30)
            m = re.search(r"pending=(\d+) done=(\d+)", r.stdout)
            return bool(m) and int(m.group(1)) == 1 and int(m.group(2)) >= 10

        started = lib.wait_until(lambda: not bg.running() or only_hold_left(), 90,
                                 interval=0.2)
        if started and bg.running() and not lib.requests_to(
                srv.read_log(), K, f"/__slow/{HOLD_SECS}"):
            cmd = [str(lib.trawlerctl()), "seed", "--allow-private",
                   "--range", "0-99", range_url]
            seed = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, TRAWLER_CRAWL_ID=crawl_id))
            chk.check(seed.returncode == 0,
                      "[1] trawlerctl seed --range 0-99 accepted during the crawl",
                      f"{' '.join(cmd)} -> exit {seed.returncode}\n"
                      f"{seed.stdout}{seed.stderr}")
        else:
            chk.check(False, "[1] the crawl was in progress (held page still "
                      "running) to take the Range seed",
                      f"run.sh running: {bg.running()}; K/__slow/{HOLD_SECS} "
                      "requested: " + str(bool(lib.requests_to(
                          srv.read_log(), K, f"/__slow/{HOLD_SECS}"))))
    res = bg.join()
    chk.check(not res.timed_out and res.rc == 0,
              f"[1] run.sh exits 0 ({res.elapsed:.1f}s)", res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    if left:
        lib.kill_marker_processes(res.marker)
    pages = out / "pages.jsonl"
    if not chk.check(pages.is_file(), f"[1] {pages} exists"):
        return
    recs, errors = lib.read_jsonl(pages)
    chk.check(not errors, "[1] pages.jsonl is JSON lines", lib.show_list(errors))
    log = srv.read_log()
    t0 = min((r["t_start"] for r in log), default=0)

    def reqs(path):
        return lib.requests_to(log, H, path)

    def exactly(name, path, n, method="GET"):
        rs = reqs(path)
        chk.check(len(rs) == n and all(r["method"] == method for r in rs),
                  f"[1] {name}: server saw {path} {n}x {method}",
                  f"expected {n} {method} request(s), saw {len(rs)}:\n"
                  + "\n".join("  " + lib.fmt_req(r, t0) for r in rs))

    # redirects
    end = f"http://{H}/__chain/{tok}a/0"
    lib.check_record(chk, "[1] chain of 5 redirects (= limit): final url, "
                     "requested_url, redirects 5, status 200, title", recs,
                     url["chain5"], {"url": end, "requested_url": url["chain5"],
                                     "redirects": 5, "status": 200,
                                     "title": f"chain end {tok}a"})
    for i in range(5, -1, -1):
        exactly(f"chain of 5, hop {i}", f"/__chain/{tok}a/{i}", 1)
    lib.check_record(chk, "[1] chain of 6 redirects (> limit 5): status 0, "
                     "error too_many_redirects", recs, url["chain6"],
                     {"status": 0, "error": "too_many_redirects"})
    for i in range(6, 0, -1):
        exactly(f"chain of 6, hop {i}", f"/__chain/{tok}b/{i}", 1)
    exactly("chain of 6: the 7th URL is never requested", f"/__chain/{tok}b/0", 0)
    lib.check_record(chk, "[1] redirect loop: status 0, error too_many_redirects",
                     recs, url["loop"], {"status": 0, "error": "too_many_redirects"})
    loop = reqs(paths["loop"]) + reqs(paths["loop"] + "/b")
    chk.check(len(loop) == MAX_REDIRECTS + 1,
              f"[1] redirect loop: exactly {MAX_REDIRECTS + 1} requests "
              f"(1 + TRAWLER_MAX_REDIRECTS={MAX_REDIRECTS}, one attempt)",
              f"expected {MAX_REDIRECTS + 1}, saw {len(loop)}:\n"
              + "\n".join("  " + lib.fmt_req(r, t0)
                          for r in sorted(loop, key=lambda r: r["t_start"])))

    # content codings
    for kind, coding in CODINGS.items():
        decoded = site_server.encoded_page_html(kind, tok)
        lib.check_record(chk, f"[1] {kind} body decoded: status 200, title, "
                         f"bytes == {len(decoded)} (decoded size)", recs, url[kind],
                         {"status": 200, "title": f"{kind} {tok}",
                          "bytes": len(decoded), "error": lib.ABSENT})
        rs = reqs(paths[kind])
        ae = [r.get("ae", "(none)") for r in rs]
        chk.check(len(rs) == 1 and coding in [c.strip().split(";")[0]
                                              for c in str(rs[0].get("ae", "")).split(",")],
                  f"[1] {kind}: requested once with Accept-Encoding listing {coding}",
                  f"expected 1 request whose Accept-Encoding contains {coding!r}; "
                  f"saw {len(rs)} with Accept-Encoding {ae}")

    # body cap
    lib.check_record(chk, f"[1] 300000-byte body with TRAWLER_MAX_BODY={MAX_BODY}: "
                     f"truncated true, bytes {MAX_BODY}", recs, url["big300"],
                     {"status": 200, "truncated": True, "bytes": MAX_BODY})
    lib.check_record(chk, f"[1] body of exactly {MAX_BODY} bytes: kept whole, "
                     "not truncated", recs, url["big100"],
                     {"status": 200, "truncated": lib.ABSENT, "bytes": MAX_BODY,
                      "title": "big 100000"})
    lib.check_record(chk, "[1] 50000-byte body: bytes 50000, not truncated",
                     recs, url["big50"], {"status": 200, "truncated": lib.ABSENT,
                                          "bytes": 50000, "title": "big 50000"})

    # HEAD on a .pdf link, GET on HTML
    lib.check_record(chk, "[1] .pdf link checked with HEAD: method HEAD, "
                     "status 200, application/pdf, bytes 0", recs, url["pdf"],
                     {"method": "HEAD", "status": 200,
                      "content_type": "application/pdf", "bytes": 0})
    exactly(".pdf link: HEAD only, never GET", paths["pdf"], 1, method="HEAD")
    lib.check_record(chk, "[1] HTML link fetched with GET (no method field), "
                     "http_version 1.1", recs, url["page"],
                     {"method": lib.ABSENT, "status": 200, "title": "plain page",
                      "http_version": "1.1"})

    # Range seed
    if seed is not None and seed.returncode == 0:
        lib.check_record(chk, "[1] Range seed 0-99: status 206, partial true, "
                         "bytes 100", recs, range_url,
                         {"status": 206, "partial": True, "bytes": 100})
        rs = reqs(f"/__range/{tok}")
        chk.check(len(rs) == 1 and rs[0].get("range") == "bytes=0-99"
                  and rs[0]["status"] == 206,
                  "[1] Range seed: one request with Range: bytes=0-99, answered 206",
                  "saw: " + "; ".join(f"{lib.fmt_req(r, t0)} range="
                                      f"{r.get('range')!r}" for r in rs))


def run2(chk, srv, site, tmp, A, L):
    secret = f"http://{L}/secret.html"
    lib.write_site_file(site, L, "secret.html", lib.html_doc("secret"))
    lib.write_site_file(site, A, "index.html", lib.html_doc(
        "public host", [f"/__redirect_to?url={secret}", "/ok.html"]))
    lib.write_site_file(site, A, "ok.html", lib.html_doc("ok page"))
    env = {"TRAWLER_ALLOW_ADDRESS": f"{A.split(':')[0]}/32"}
    out = tmp / "out2"
    args = ["--delay", "0", "--out", str(out), f"http://{A}/"]
    chk.info(f"[2] env TRAWLER_ALLOW_ADDRESS={env['TRAWLER_ALLOW_ADDRESS']}; "
             "./run.sh " + " ".join(args) + "   (no --allow-private)")
    res = lib.run_trawler(args, RUN_TIMEOUT, env_extra=env,
                          env_remove=("TRAWLER_ALLOW_PRIVATE",))
    chk.check(not res.timed_out and res.rc == 0,
              f"[2] run.sh without --allow-private, {A} allowed by "
              f"TRAWLER_ALLOW_ADDRESS: exits 0 ({res.elapsed:.1f}s)", res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    if left:
        lib.kill_marker_processes(res.marker)
    pages = out / "pages.jsonl"
    recs = []
    if chk.check(pages.is_file(), f"[2] {pages} exists"):
        recs, _ = lib.read_jsonl(pages)
    lib.check_record(chk, "[2] the allowed address is crawled: index 200",
                     recs, f"http://{A}/", {"status": 200, "title": "public host"})
    lib.check_record(chk, "[2] the allowed address is crawled: ok.html 200",
                     recs, f"http://{A}/ok.html", {"status": 200})
    redir = [r for r in recs if any(
        urlsplit(str(r.get(k, ""))).path == "/__redirect_to"
        for k in ("url", "requested_url"))]
    blocked = [r for r in recs if r.get("error") == "blocked_address"]
    chk.check(len(redir) == 1 and redir[0].get("status") == 0 and
              redir[0].get("error") == "blocked_address",
              f"[2] redirect to {secret}: one record, status 0, error "
              "blocked_address",
              f"expected 1 record for {A}/__redirect_to?... with status 0 and "
              f"error blocked_address; found {len(redir)}:\n"
              + lib.show_list(lib.short_record(r) for r in redir)
              + "\nall records:\n" + lib.show_list(lib.short_record(r) for r in recs))
    if blocked:
        chk.info("[2] blocked_address message: "
                 + str(blocked[0].get("error_message")))
    log = srv.read_log()
    hit = [r for r in log if r["host"] == L]
    chk.check(not hit, f"[2] the 127.0.0.1 listener {L} received no request",
              "\n".join(lib.fmt_req(r) for r in hit))
    conns = [c for c in srv.read_conn_log() if c["host"] == L]
    chk.info(f"[2] TCP connections accepted on {L}: {len(conns)} "
             "(0 = refused before connecting)")
    a_reqs = [r for r in log if r["host"] == A and
              urlsplit(r["path"]).path == "/__redirect_to"]
    chk.check(len(a_reqs) == 1 and a_reqs[0]["status"] == 302,
              "[2] the redirecting page itself was requested once (302)",
              "\n".join(lib.fmt_req(r) for r in a_reqs) or "never requested")

    # A seed on 127.0.0.1 itself is refused up front.
    out3 = tmp / "out3"
    res = lib.run_trawler(["--delay", "0", "--out", str(out3), secret], 60,
                          env_extra=env, env_remove=("TRAWLER_ALLOW_PRIVATE",))
    hit = [r for r in srv.read_log() if r["host"] == L]
    chk.check(res.rc not in (0, None) and not res.timed_out and not hit,
              f"[2] a seed on 127.0.0.1 is refused without --allow-private "
              f"(exit {res.rc}, {len(hit)} requests on {L})", res.describe(10))


def main():
    chk = lib.Checker("integration.test_fetch_http")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-http-")
    chk.info(f"temp dir {tmp}")
    brotli = lib.ensure_debian_package("brotli", "brotli")
    chk.info(f"brotli encoder: {brotli or 'built-in (no brotli CLI)'}")
    tok = uuid.uuid4().hex[:10]
    srv = lib.SiteServer(tmp / "site", ["127.0.0.31:0", "127.0.0.32:0",
                                        "127.0.0.33:0", "127.0.0.1:0"],
                         tmp / "requests.jsonl", conn_log=tmp / "conns.jsonl")
    try:
        with lib.shared_services(chk):
            H, K, A, L = srv.start()
            chk.info(f"H={H} K={K} (holds the crawl open) A={A} (SSRF seed) L={L}")
            run1(chk, srv, tmp / "site", tmp, H, K, tok)
            run2(chk, srv, tmp / "site", tmp, A, L)
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
