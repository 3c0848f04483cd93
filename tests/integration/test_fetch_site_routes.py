#!/usr/bin/env python3
"""Self-test of the fetch-behaviour endpoints and modes of tests/site/server.py
(no crawler needed): the other test_fetch_*.py tests rely on each of them
answering exactly as documented in server.py's docstring.

Checks, over real HTTP with http.client: /__status, /__503then200, /__429,
/__gzip /__deflate /__brotli (decoded == encoded_page_html), /__big,
/__slowbody, /__stall, /__redirect_loop, /__chain, /__redirect_to,
/__range (206 / 416 / 200), /__etag (304), --robots-status, --slow, the
kernel-timestamped t_start, the extra log fields and --conn-log.

Run: python3 tests/integration/test_fetch_site_routes.py   (exit 0 = pass)
"""

import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

sys.path.insert(0, str(lib.SITE_DIR))
import server as site_server  # noqa: E402


def get(hp, path, headers=None, method="GET", timeout=10):
    host, port = hp.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def title_of(body):
    b = body.decode("utf-8", "replace")
    i, j = b.find("<title>"), b.find("</title>")
    return b[i + 7:j] if 0 <= i < j else None


def main():
    chk = lib.Checker("integration.test_fetch_site_routes")
    tmp = lib.make_tmpdir("trawler-routes-")
    tok = uuid.uuid4().hex[:8]
    srv = lib.SiteServer(tmp / "site", ["127.0.0.61:0", "127.0.0.62:0"],
                         tmp / "requests.jsonl", conn_log=tmp / "conns.jsonl",
                         extra_args=["--robots-status", "127.0.0.61:0=503x1",
                                     "--slow", "127.0.0.62:0=0.3"])
    try:
        A, B = srv.start()
        lib.write_site_file(tmp / "site", A, "robots.txt", "User-agent: *\nAllow: /\n")

        s, h, b = get(A, f"/__status/418/{tok}")
        chk.check(s == 418 and title_of(b) == "status 418", "/__status/418: 418 + HTML")
        s, h, b = get(A, f"/__status/204/{tok}")
        chk.check(s == 204 and b == b"" and "content-length" not in h,
                  "/__status/204: no body, no Content-Length", f"{s} {h} {b!r}")

        seq = [get(A, f"/__503then200/{tok}/2")[0] for _ in range(4)]
        chk.check(seq == [503, 503, 200, 200], "/__503then200/T/2: 503, 503, 200, 200", seq)
        s1, h1, _ = get(A, f"/__429/{tok}/3")
        s2, _, b2 = get(A, f"/__429/{tok}/3")
        chk.check(s1 == 429 and h1.get("retry-after") == "3" and s2 == 200
                  and title_of(b2) == f"429 {tok}",
                  "/__429/T/3: 429 + Retry-After: 3, then 200", f"{s1} {h1} {s2}")

        for kind, coding, dec in (("gzip", "gzip", gzip.decompress),
                                  ("deflate", "deflate", zlib.decompress),
                                  ("brotli", "br", None)):
            s, h, raw = get(A, f"/__{kind}/{tok}", {"Accept-Encoding": coding})
            want = site_server.encoded_page_html(kind, tok)
            if dec is None:
                cli = shutil.which("brotli")
                if not cli:
                    chk.info("no brotli CLI: brotli body not decoded here")
                    continue
                r = subprocess.run([cli, "-d", "-c"], input=raw, capture_output=True)
                got = r.stdout if r.returncode == 0 else None
                # the built-in encoder too (used when the CLI is missing)
                r2 = subprocess.run([cli, "-d", "-c"], capture_output=True,
                                    input=site_server.brotli_stored(want))
                chk.check(r2.returncode == 0 and r2.stdout == want,
                          "built-in brotli encoder: a stream the reference decoder reads")
            else:
                got = dec(raw)
            chk.check(s == 200 and h.get("content-encoding") == coding and got == want
                      and raw != want and title_of(want) == f"{kind} {tok}",
                      f"/__{kind}: Content-Encoding {coding}, decodes to "
                      f"encoded_page_html ({len(want)} bytes)")

        s, h, b = get(A, f"/__big/12345/{tok}")
        chk.check(s == 200 and len(b) == 12345 and b == site_server.big_body(12345)
                  and title_of(b) == "big 12345", "/__big/12345: exactly 12345 bytes")

        t0 = time.time()
        host, port = A.rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", "/__slowbody/1")
        r = c.getresponse()
        t_head = time.time() - t0
        body = r.read()
        t_body = time.time() - t0
        c.close()
        chk.check(r.status == 200 and t_head < 0.3 and 0.9 <= t_body < 3
                  and len(body) == 1000,
                  f"/__slowbody/1: headers after {t_head:.2f}s, 1000 bytes after "
                  f"{t_body:.2f}s")

        sk = socket.create_connection((host, int(port)), timeout=5)
        sk.sendall(f"GET /__stall/{tok} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sk.settimeout(0.5)
        try:
            got = sk.recv(100)
        except socket.timeout:
            got = None
        sk.close()
        chk.check(got is None, "/__stall: no answer within 0.5s", repr(got))

        s, h, _ = get(A, f"/__redirect_loop/{tok}")
        s2, h2, _ = get(A, h.get("location", "/"))
        chk.check(s == 302 and h.get("location") == f"/__redirect_loop/{tok}/b"
                  and s2 == 302 and h2.get("location") == f"/__redirect_loop/{tok}",
                  "/__redirect_loop: A -> B -> A", f"{h} {h2}")
        hops, loc = [], f"/__chain/{tok}/2"
        for _ in range(4):
            s, h, b = get(A, loc)
            hops.append((loc, s))
            if s != 302:
                break
            loc = h["location"]
        chk.check([x for _, x in hops] == [302, 302, 200]
                  and title_of(b) == f"chain end {tok}", "/__chain/T/2: 2 hops then 200",
                  hops)
        s, h, _ = get(A, "/__redirect_to?url=http://127.0.0.1:9/x&status=307")
        chk.check(s == 307 and h.get("location") == "http://127.0.0.1:9/x",
                  "/__redirect_to: status and Location as asked", f"{s} {h}")

        full = site_server.range_body(1000)
        cases = [("bytes=0-99", 206, "bytes 0-99/1000", full[:100]),
                 ("bytes=990-", 206, "bytes 990-999/1000", full[990:]),
                 ("bytes=-5", 206, "bytes 995-999/1000", full[995:]),
                 ("bytes=5000-", 416, "bytes */1000", b""),
                 (None, 200, None, full)]
        bad = []
        for rng, st, cr, body in cases:
            s, h, b = get(A, f"/__range/{tok}", {"Range": rng} if rng else {})
            if (s, h.get("content-range"), b) != (st, cr, body):
                bad.append(f"Range {rng}: got {s} {h.get('content-range')} "
                           f"{len(b)} bytes, expected {st} {cr} {len(body)} bytes")
        chk.check(not bad, "/__range: 206 + Content-Range, 416, 200 without Range",
                  lib.show_list(bad))

        s, h, _ = get(A, f"/__etag/{tok}")
        s2, _, b2 = get(A, f"/__etag/{tok}", {"If-None-Match": h.get("etag", "")})
        s3, _, _ = get(A, f"/__etag/{tok}", {"If-Modified-Since": h.get("last-modified", "")})
        s4, _, _ = get(A, f"/__etag/{tok}",
                       {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        chk.check((s, s2, b2, s3, s4) == (200, 304, b"", 304, 200)
                  and h.get("etag") == f'"etag-{tok}"',
                  "/__etag: ETag, 304 on If-None-Match / If-Modified-Since",
                  f"{(s, s2, b2, s3, s4)} {h}")

        rob = [get(A, "/robots.txt")[0] for _ in range(3)]
        robb = [get(B, "/robots.txt")[0]]
        chk.check(rob == [503, 200, 200] and robb == [404],
                  "--robots-status A=503x1: 503 once, then the file; B untouched",
                  f"A {rob}, B {robb}")

        # --slow and the kernel receive timestamp
        sk = socket.create_connection(tuple((B.rsplit(":", 1)[0], int(B.rsplit(":", 1)[1]))))
        t_send = time.time()
        sk.sendall(f"GET /slow-{tok} HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n"
                   "Accept-Encoding: gzip\r\nIf-None-Match: \"x\"\r\n"
                   "Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            part = sk.recv(4096)
            if not part:
                break
            data += part
        t_done = time.time() - t_send
        sk.close()
        time.sleep(0.2)
        log = srv.read_log()
        rec = [r for r in log if r["path"] == f"/slow-{tok}"]
        ok = rec and abs(rec[0]["t_start"] - t_send) < 0.005 and \
            rec[0]["t_end"] - rec[0]["t_start"] >= 0.3 and t_done >= 0.3
        chk.check(ok, "--slow B=0.3: answered after 0.3s; t_start is the arrival "
                  "time (within 5 ms of the send)",
                  f"sent at {t_send:.4f}, answered after {t_done:.3f}s; log {rec}")
        chk.check(rec and rec[0].get("range") == "bytes=1-2" and rec[0].get("ae") == "gzip"
                  and rec[0].get("inm") == '"x"',
                  "log: range, ae, inm recorded", str(rec))
        st = [r for r in log if r["path"] == f"/__stall/{tok}"]
        chk.check(st and st[0].get("stalled") is True and st[0]["status"] == 0
                  and 0.4 <= st[0]["t_end"] - st[0]["t_start"] < 2,
                  "log: /__stall logged stalled, status 0, ended when the client "
                  "gave up", str(st))
    except Exception:
        chk.check(False, "route checks", traceback.format_exc())
    finally:
        rc = srv.stop()
    conns = srv.read_conn_log()
    chk.check(conns and all({"host", "conn", "t_open", "t_close", "requests"} <= set(c)
                            for c in conns) and sum(c["requests"] for c in conns)
              == len(srv.read_log()),
              f"--conn-log: {len(conns)} connections, requests add up to the log",
              f"{sum(c['requests'] for c in conns)} vs {len(srv.read_log())}")
    chk.check(rc == 0, "server stopped cleanly", f"exit status {rc}")
    result = chk.summary()
    lib.cleanup_tmpdir(tmp, result == 0)
    return result


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
