#!/usr/bin/env python3
"""Hostile servers (issue 8, "Adversarial servers"): one crawl over a site
whose index links to every case must complete in bounded time, with exactly
one pages.jsonl line per case carrying the expected outcome, while each
worker's peak RSS (VmHWM) stays bounded.

  ./run.sh --allow-private --delay 0 --host-connections 4 \\
      --crawl-id ID --out OUT http://H/ http://T/__trap/TOK/2000/01/01
  TRAWLER_TIMEOUT=5 TRAWLER_MAX_BODY=1000000 TRAWLER_MAX_REDIRECTS=10
  TRAWLER_MAX_PAGES_PER_HOST=300 TRAWLER_LOW_SPEED_LIMIT=100
  TRAWLER_LOW_SPEED_TIME=3   (127.0.0.41 = H, the cases; 127.0.0.42 = T,
                              the spider trap)

H's index links to (tests/site/server.py endpoints; TOK = a fresh token):
  gzipbomb     /__gzipbomb/TOK          2 GiB of gzip-encoded HTML (~2 MiB on
               the wire) -> 200, truncated, bytes == MAX_BODY, title
  endless      /__endless/TOK           chunked forever, full speed ->
               200, truncated, bytes == MAX_BODY, title
  trickle      /__endless/TOK/trickle   chunked forever at 2.5 KB/s (above
               the low-speed limit) -> error timeout (TRAWLER_TIMEOUT)
  slowloris    /__slowloris/TOK/body    body at 1 byte/s -> error timeout
  slowhead     /__slowloris/TOK/head    status line and headers at 1 byte/s
               -> error timeout
  chain        /__chain/TOK/10000       10,000-hop redirect chain -> error
               too_many_redirects; per attempt exactly 1 + MAX_REDIRECTS
               requests, hop 10000 - 11 never requested
  hugeurl5k    /__hugeurl/TOK/5000      link of 5 KB (> --max-url-length
               2048, < the 8192 hard cap) -> 200, links 2, followed 0
  hugeurl900k  /__hugeurl/TOK/900000    link of 900 KB (> 8192: not even a
               link) -> 200, links 1, followed 0
  hugeurl3m    /__hugeurl/TOK/3000000   link of 3 MB in a page cut at
               MAX_BODY -> 200, truncated, links 0
  hugeloc      /__hugelocation/TOK/2000000  302 with a 2 MB Location header
               -> status 0, an error, the target never requested
  manyheaders  /__headers/TOK/1000/20   1000 headers (20 KB block, over the
               100-header cap) -> 200, title
  bigheaders   /__headers/TOK/100/1000  100 KB header block (> 64 KiB cap)
               -> status 0, error other, "response headers over 65536 bytes"
  binary_utf8  /__binary/TOK/utf8       invalid UTF-8, NULs, binary junk
  binary_none  /__binary/TOK/none       (declared utf-8 / no charset) ->
               200, title and both links extracted, valid JSON line
  sjis         /__sjis/TOK              Shift_JIS, one invalid byte pair
               before two links -> 200, title decoded, both links found
  nested       /__nested/TOK/100000     100,000 unclosed <div>s then a
               link -> 200, title, the link at the bottom found
  manylinks    /__manylinks/TOK/100000  100,000 distinct links (1.4 MB, cut
               at MAX_BODY) -> 200, truncated, links == 10000 (--max-links)
  bigtitle     /__bigtitle/TOK/100000   100 KB <title> -> cut to <= 1024
               bytes
  midbody      /__midbody/TOK           chunked, closed mid-chunk -> error
               recv
  cl_long      /__cl/TOK/long           Content-Length 10000, 2000 sent,
               closed -> error recv
  cl_short     /__cl/TOK/short          Content-Length 200, 4000 sent ->
               200, bytes 200, title
  http10       /__http10/TOK            HTTP/1.0, no Content-Length ->
               200, bytes 50000 (all of it), http_version 1.0
  trap         http://T/__trap/TOK/2000/01/01 (also the second seed): an
               endless calendar -> at most 300 pages of T, and the cap is
               what stopped it (>= 290 pages)

Also checked: run.sh exits 0 within RUN_BOUND seconds; pages.jsonl is
strict UTF-8 JSON lines; every record's bytes <= MAX_BODY; no
/__hugetarget/ URL is requested or recorded; peak RSS (VmHWM, polled every
0.2 s from /proc) of every trawler-producer and trawler-consumer < 400 MiB,
and of the test server < 300 MiB; nothing run.sh started is left running.

Run: python3 tests/integration/test_adversarial.py   (exit 0 = pass)
"""

import os
import sys
import threading
import traceback
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

sys.path.insert(0, str(lib.SITE_DIR))
import server as site_server  # noqa: E402  (exact bodies)

MAX_BODY = 1000000
MAX_REDIRECTS = 10
MAX_PAGES_PER_HOST = 300
MAX_LINKS = 10000          # --max-links default
TITLE_MAX = 1024           # TR_LINKS_TITLE_MAX
ENV = {"TRAWLER_TIMEOUT": "5", "TRAWLER_MAX_BODY": str(MAX_BODY),
       "TRAWLER_MAX_REDIRECTS": str(MAX_REDIRECTS),
       "TRAWLER_MAX_PAGES_PER_HOST": str(MAX_PAGES_PER_HOST),
       "TRAWLER_LOW_SPEED_LIMIT": "100", "TRAWLER_LOW_SPEED_TIME": "3"}
RUN_BOUND = 120            # the crawl must complete within this
RUN_TIMEOUT = 300          # killed after this
RSS_LIMIT_MIB = 400
SERVER_RSS_LIMIT_MIB = 300
POLL = 0.2


def case_paths(tok):
    return {
        "gzipbomb": f"/__gzipbomb/{tok}",
        "endless": f"/__endless/{tok}",
        "trickle": f"/__endless/{tok}/trickle",
        "slowloris": f"/__slowloris/{tok}/body",
        "slowhead": f"/__slowloris/{tok}/head",
        "chain": f"/__chain/{tok}/10000",
        "hugeurl5k": f"/__hugeurl/{tok}/5000",
        "hugeurl900k": f"/__hugeurl/{tok}/900000",
        "hugeurl3m": f"/__hugeurl/{tok}/3000000",
        "hugeloc": f"/__hugelocation/{tok}/2000000",
        "manyheaders": f"/__headers/{tok}/1000/20",
        "bigheaders": f"/__headers/{tok}/100/1000",
        "binary_utf8": f"/__binary/{tok}/utf8",
        "binary_none": f"/__binary/{tok}/none",
        "sjis": f"/__sjis/{tok}",
        "nested": f"/__nested/{tok}/100000",
        "manylinks": f"/__manylinks/{tok}/100000",
        "bigtitle": f"/__bigtitle/{tok}/100000",
        "midbody": f"/__midbody/{tok}",
        "cl_long": f"/__cl/{tok}/long",
        "cl_short": f"/__cl/{tok}/short",
        "http10": f"/__http10/{tok}",
    }


# --------------------------------------------------------------------------
# Peak RSS of the workers, polled while they run

class RssWatch:
    """Every POLL seconds: find trawler-* processes whose environment holds
    TAG=value (what this test's run.sh started) and read VmHWM (peak RSS)
    and VmRSS from /proc/PID/status; also the test server's (by pid)."""

    TAG = "TRAWLER_ADV_RSS_TAG"

    def __init__(self, value, extra_pids=()):
        self.needle = f"{self.TAG}={value}".encode()
        self.extra = set(extra_pids)
        self.ours = {}        # pid -> comm, ours
        self.notours = set()
        self.peak = {}        # pid -> (comm, max VmHWM kB)
        self.samples = 0
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def _read(path, binary=False):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            return data if binary else data.decode("utf-8", "replace")
        except OSError:
            return None

    def scan(self):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            if pid in self.notours:
                continue
            if pid not in self.ours:
                comm = (self._read(f"/proc/{pid}/comm") or "").strip()
                if pid in self.extra:
                    self.ours[pid] = comm or "server"
                    continue
                if not comm.startswith("trawler-"):
                    continue
                env = self._read(f"/proc/{pid}/environ", binary=True)
                if env is None:
                    continue
                if self.needle in env.split(b"\0"):
                    self.ours[pid] = comm
                else:
                    self.notours.add(pid)
        for pid, comm in list(self.ours.items()):
            st = self._read(f"/proc/{pid}/status")
            if not st:
                continue
            for line in st.splitlines():
                if line.startswith("VmHWM:"):
                    kb = int(line.split()[1])
                    old = self.peak.get(pid, (comm, 0))[1]
                    self.peak[pid] = (comm, max(old, kb))
        self.samples += 1

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.scan()
            except Exception:   # a process vanished mid-read: next round
                pass
            self.stop_ev.wait(POLL)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(5)


# --------------------------------------------------------------------------

def utf8_len(s):
    return len(s.encode("utf-8"))


def main():
    chk = lib.Checker("integration.test_adversarial")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-adv-")
    chk.info(f"temp dir {tmp}")
    tok = uuid.uuid4().hex[:10]
    srv = lib.SiteServer(tmp / "site", ["127.0.0.41:0", "127.0.0.42:0"],
                         tmp / "requests.jsonl")
    try:
        with lib.shared_services(chk):
            H, T = srv.start()
            chk.info(f"H={H} (cases) T={T} (spider trap)")
            crawl(chk, srv, tmp, H, T, tok)
    except Exception:
        chk.check(False, "test setup and run", traceback.format_exc())
    finally:
        rc = srv.stop()
    chk.check(rc == 0, "test server stopped cleanly", f"exit status {rc}")
    result = chk.summary()
    lib.cleanup_tmpdir(tmp, result == 0)
    return result


def crawl(chk, srv, tmp, H, T, tok):
    site = tmp / "site"
    paths = case_paths(tok)
    trap_start = f"http://{T}/__trap/{tok}/2000/01/01"
    lib.write_site_file(site, H, "index.html", lib.html_doc(
        "adversarial cases", list(paths.values()) + [trap_start]))
    url = {k: f"http://{H}{p}" for k, p in paths.items()}
    out = tmp / "out"
    args = ["--allow-private", "--delay", "0", "--host-connections", "4",
            "--crawl-id", f"adversarial-{tok}", "--out", str(out),
            f"http://{H}/", trap_start]
    tag = uuid.uuid4().hex
    env = dict(ENV, **{RssWatch.TAG: tag})
    chk.info("env " + " ".join(f"{k}={v}" for k, v in ENV.items()))
    chk.info("./run.sh " + " ".join(args))

    with RssWatch(tag, extra_pids=[srv.proc.pid]) as rss:
        res = lib.run_trawler(args, RUN_TIMEOUT, env_extra=env)
    chk.check(not res.timed_out and res.rc == 0,
              f"run.sh exits 0: the crawl completes ({res.elapsed:.1f}s)",
              res.describe())
    chk.check(res.elapsed <= RUN_BOUND,
              f"the crawl completes within {RUN_BOUND}s ({res.elapsed:.1f}s)")
    left = lib.leftover_processes(res.marker, grace=15)
    chk.check(not left, "nothing run.sh started is left running",
              lib.show_list(f"{p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)

    # peak RSS
    workers = {pid: v for pid, v in rss.peak.items()
               if v[0] in ("trawler-produce", "trawler-consume",
                           "trawler-producer", "trawler-consumer")}
    server_peak = rss.peak.get(srv.proc.pid, ("server", 0))[1]
    report = "\n".join(f"{comm} pid {pid}: VmHWM {kb / 1024:.1f} MiB"
                       for pid, (comm, kb) in sorted(rss.peak.items()))
    chk.info(f"peak RSS ({rss.samples} samples every {POLL}s):\n{report}")
    kinds = {c[:15] for c, _ in workers.values()}
    chk.check({"trawler-produce", "trawler-consume"} <= kinds,
              "peak RSS sampled for the producer and the consumer",
              f"processes seen: {report or '(none)'}")
    big = {pid: v for pid, v in workers.items() if v[1] > RSS_LIMIT_MIB * 1024}
    chk.check(workers and not big,
              f"every worker's peak RSS (VmHWM) < {RSS_LIMIT_MIB} MiB", report)
    chk.check(0 < server_peak < SERVER_RSS_LIMIT_MIB * 1024,
              f"the test server's peak RSS < {SERVER_RSS_LIMIT_MIB} MiB "
              f"({server_peak / 1024:.1f} MiB): its hostile responses are streamed")

    pages = out / "pages.jsonl"
    if not chk.check(pages.is_file(), f"{pages} exists"):
        return
    recs, errors = lib.read_jsonl(pages)
    chk.check(not errors, "pages.jsonl is strict UTF-8 JSON lines",
              lib.show_list(errors))
    log = srv.read_log()
    t0 = min((r["t_start"] for r in log), default=0)

    over = [lib.short_record(r) for r in recs if r.get("bytes", 0) > MAX_BODY]
    chk.check(not over, f"no record keeps more than MAX_BODY={MAX_BODY} bytes",
              lib.show_list(over))
    lib.check_record(chk, "index: 200", recs, f"http://{H}/",
                     {"status": 200, "title": "adversarial cases"})

    def case(name, want, what):
        return lib.check_record(chk, f"{name} ({paths[name]}): {what}", recs,
                                url[name], want,
                                by="requested_url" if name == "chain" else "any")

    def trunc_cap(v):
        """truncated true"""
        return v is True

    def upto_cap(v):
        """<= MAX_BODY"""
        return isinstance(v, int) and v <= MAX_BODY

    # bodies that never end or explode
    case("gzipbomb", {"status": 200, "truncated": True, "bytes": MAX_BODY,
                      "title": f"gzip bomb {tok}", "error": lib.ABSENT},
         f"200, truncated, bytes {MAX_BODY}, title")
    gz = lib.requests_to(log, H, paths["gzipbomb"])
    chk.check(gz and all(r["bytes"] < 64 * 1024 * 1024 for r in gz),
              "gzipbomb: the server sent only a little of its 2 GiB "
              f"(wire bytes {[r['bytes'] for r in gz]})")
    case("endless", {"status": 200, "truncated": True, "bytes": MAX_BODY,
                     "title": f"endless {tok}", "error": lib.ABSENT},
         f"200, truncated, bytes {MAX_BODY}, title")
    case("trickle", {"status": 0, "error": "timeout"},
         "status 0, error timeout (TRAWLER_TIMEOUT=5)")
    case("slowloris", {"status": 0, "error": "timeout"},
         "body at 1 byte/s: status 0, error timeout")
    case("slowhead", {"status": 0, "error": "timeout"},
         "head at 1 byte/s: status 0, error timeout")
    for name in ("trickle", "slowloris", "slowhead"):
        rs = lib.requests_to(log, H, paths[name])
        long_ = [r for r in rs if r["t_end"] - r["t_start"] > 15]
        chk.check(rs and not long_,
                  f"{name}: each attempt given up within 15 s at the server",
                  "\n".join(lib.fmt_req(r, t0) for r in rs))

    # redirects
    rec = case("chain", {"status": 0, "error": "too_many_redirects"},
               "status 0, error too_many_redirects")
    hops = [r for r in log if r["host"] == H and
            r["path"].startswith(f"/__chain/{tok}/")]
    lowest = min((int(r["path"].rsplit("/", 1)[1]) for r in hops), default=None)
    attempts = (rec or {}).get("attempts", 1)
    chk.check(len(hops) == (MAX_REDIRECTS + 1) * attempts and
              lowest == 10000 - MAX_REDIRECTS,
              f"chain: {MAX_REDIRECTS + 1} requests per attempt ({attempts}), "
              f"the lowest hop requested is {10000 - MAX_REDIRECTS}",
              f"{len(hops)} requests, lowest hop {lowest}")

    # huge URLs
    case("hugeurl5k", {"status": 200, "title": f"hugeurl {tok} 5000",
                       "links": 2, "followed": 0},
         "200, both links extracted, none followed (5 KB URL > --max-url-length)")
    case("hugeurl900k", {"status": 200, "title": f"hugeurl {tok} 900000",
                         "links": 1, "followed": 0, "truncated": lib.ABSENT},
         "200, the 900 KB URL is no link (> 8192 hard cap), the other is")
    case("hugeurl3m", {"status": 200, "title": f"hugeurl {tok} 3000000",
                       "truncated": True, "bytes": MAX_BODY, "links": 0},
         f"200, truncated at {MAX_BODY} inside the 3 MB URL, no link")
    # libcurl refuses a header line over 100 KB itself (CURLE_OUT_OF_MEMORY,
    # "Out of memory", mapped to error other) before trawler's 64 KiB
    # header-block cap sees it; any transport error will do here.
    rec = case("hugeloc", {"status": 0, "redirects": lib.ABSENT,
                           "error": lambda v: v in ("other", "protocol", "recv")},
               "2 MB Location header: status 0, an error, not followed")
    if rec:
        chk.info(f"hugeloc: error {rec.get('error')}: {rec.get('error_message')}")
    hit = [r for r in log if "/__hugetarget/" in r["path"]]
    chk.check(not hit, "no /__hugetarget/ URL was ever requested",
              lib.show_list(r["path"][:120] for r in hit))
    rec_hit = [lib.short_record(r)[:200] for r in recs
               if "__hugetarget" in (r.get("url", "") + r.get("requested_url", ""))]
    chk.check(not rec_hit, "no /__hugetarget/ URL in pages.jsonl", lib.show_list(rec_hit))

    # headers
    case("manyheaders", {"status": 200, "title": f"headers {tok} 1000 20"},
         "1000 headers: 200, title")
    rec = case("bigheaders", {"status": 0, "error": "other",
                              "error_message": "response headers over 65536 bytes"},
               "100 KB header block: status 0, error other (the 64 KiB cap)")

    # bytes
    for name in ("binary_utf8", "binary_none"):
        rec = case(name, {"status": 200, "links": 2, "followed": 0, "nofollow": 2,
                          "title": lambda v: isinstance(v, str) and
                          v.startswith(f"binary {tok} ") and v.endswith(" end")},
                   "200, title (bad bytes replaced) and both links extracted")
        if rec:
            chk.info(f"{name}: title {rec.get('title')!r}")
    # One invalid byte sequence in a Shift_JIS page: the crawler converts
    # the page to UTF-8 itself (the bad bytes become U+FFFD), so the links
    # after it are found, as a browser would (libxml2 alone stops there).
    case("sjis", {"status": 200, "title": f"sjis {tok} 日本語", "links": 2, "nofollow": 2},
         "Shift_JIS with a bad byte sequence: 200, title decoded, both links after it found")
    rec = case("nested", {"status": 200, "title": f"nested {tok} 100000",
                          "links": 1, "nofollow": 1},
               "100,000 levels: 200, title, the link at the bottom found")
    rec = case("manylinks", {"status": 200, "title": f"manylinks {tok} 100000",
                             "truncated": True, "links": MAX_LINKS,
                             "nofollow": MAX_LINKS, "followed": 0},
               f"100,000 links: 200, links == {MAX_LINKS} (--max-links)")
    rec = case("bigtitle", {"status": 200, "title": lambda v: isinstance(v, str) and
                            v.startswith(f"bigtitle {tok} xxx") and
                            utf8_len(v) <= TITLE_MAX},
               f"100 KB title: cut to <= {TITLE_MAX} bytes")
    if rec:
        chk.info(f"bigtitle: title kept {utf8_len(rec.get('title', ''))} bytes")

    # framing
    case("midbody", {"status": 0, "error": "recv"},
         "closed mid-chunk: status 0, error recv")
    case("cl_long", {"status": 0, "error": "recv"},
         "Content-Length longer than the body, then close: status 0, error recv")
    case("cl_short", {"status": 200, "bytes": 200, "title": f"cl short {tok}",
                      "error": lib.ABSENT},
         "Content-Length shorter than the body: 200, bytes 200 (the length)")
    case("http10", {"status": 200, "bytes": len(site_server.http10_html(tok)),
                    "title": f"http10 {tok}", "http_version": "1.0",
                    "truncated": lib.ABSENT, "error": lib.ABSENT},
         "HTTP/1.0 without length: 200, the whole body, http_version 1.0")

    # every case once, every H record a case (or the index)
    expected_h = {f"http://{H}/"} | set(url.values())
    other_h = [lib.short_record(r)[:200] for r in recs
               if urlsplit(r.get("requested_url") or r.get("url", "")).netloc == H
               and (r.get("requested_url") or r.get("url")) not in expected_h]
    chk.check(not other_h, "no other page of H was fetched (nothing followed "
              "from the hostile pages)", lib.show_list(other_h))

    # spider trap
    trap_recs = [r for r in recs
                 if urlsplit(r.get("requested_url") or r.get("url", "")).netloc == T]
    trap_reqs = [r for r in log if r["host"] == T and r["path"].startswith("/__trap/")]
    chk.info(f"trap: {len(trap_recs)} records, {len(trap_reqs)} requests")
    chk.check(len(trap_recs) <= MAX_PAGES_PER_HOST,
              f"trap: at most TRAWLER_MAX_PAGES_PER_HOST={MAX_PAGES_PER_HOST} "
              f"pages of T ({len(trap_recs)})")
    chk.check(len(trap_recs) >= MAX_PAGES_PER_HOST - 10,
              f"trap: the per-host cap is what stopped it (>= "
              f"{MAX_PAGES_PER_HOST - 10} pages, {len(trap_recs)})")
    chk.check(all(r.get("status") == 200 for r in trap_recs) and
              len({r.get("url") for r in trap_recs}) == len(trap_recs),
              "trap: every trap page once, status 200")
    chk.check(len(trap_reqs) == len(trap_recs),
              f"trap: the server saw one request per record ({len(trap_reqs)})")


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
