#!/usr/bin/env python3
"""Sitemap seeding (--sitemaps): pages reachable only through sitemaps.

Site on 127.0.0.31: the seed page links nowhere; robots.txt names
  Sitemap: http://HOST/sitemap_index.xml        (in scope)
  Sitemap: http://127.0.0.39:9/offsite.xml      (another host: not admitted)
sitemap_index.xml (<sitemapindex>) lists sm/pages.xml and sm/more.xml.gz;
sm/pages.xml (<urlset>) lists hidden/1..5.html, one of them twice, and an
offsite page; sm/more.xml.gz (gzip, served as application/octet-stream,
which the content-type allow list would refuse for a page) lists
hidden/6..8.html. The hidden pages link nowhere.

Run N (no option): only the seed is crawled; the server never sees a
  sitemap or hidden page.
Run S (TRAWLER_SITEMAPS=1): every sitemap and hidden page is fetched
  exactly once (status 200); the sitemap records say "sitemap": "index" /
  "urlset"; nothing offsite is requested or recorded. robots.txt comes
  from the cluster cache here (fetched in run N), so the cached path
  seeds too.
Run C (TRAWLER_SITEMAPS=1 TRAWLER_SITEMAP_MAX_URLS=2): at most 2 locs per
  sitemap are followed: pages.xml gives hidden/1-2, more.xml.gz hidden/6-7,
  and both urlset records say "sitemap_truncated": true.

Run R (TRAWLER_SITEMAPS=1, TRAWLER_LEASE=1) on a copy of the site on
  127.0.0.32 whose every answer takes 2.5 s: the lease reaper re-enqueues
  URLs still pending after 1 s. Read back from the frontier topic (kcat,
  decoded with protoc against proto/trawler.proto), every re-enqueued copy
  ("reaped") of a sitemap still carries "sitemap" (a copy without it would
  be read as a page and its <loc> URLs lost), no re-enqueued page carries
  it, and the crawl completes with every hidden page.

Run: python3 tests/integration/test_sitemaps.py   (exit 0 = pass)
"""

import collections
import gzip
import os
import re
import subprocess
import sys
import traceback
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RUN_TIMEOUT = 120
NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def urlset(locs):
    items = "".join(f"  <url><loc>\n    {u}\n  </loc><lastmod>2024-01-01</lastmod></url>\n"
                    for u in locs)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{NS}">\n{items}'
            "</urlset>\n")


def build_site(site, hp):
    base = f"http://{hp}"
    lib.write_site_file(site, hp, "index.html", lib.html_doc("seed page"))
    lib.write_site_file(site, hp, "robots.txt",
                        "User-agent: *\nAllow: /\n"
                        f"Sitemap: {base}/sitemap_index.xml\n"
                        "Sitemap: http://127.0.0.39:9/offsite.xml\n")
    lib.write_site_file(site, hp, "sitemap_index.xml",
                        f'<?xml version="1.0"?>\n<sitemapindex xmlns="{NS}">\n'
                        f"<sitemap><loc>{base}/sm/pages.xml</loc></sitemap>\n"
                        f"<sitemap><loc>{base}/sm/more.xml.gz</loc></sitemap>\n"
                        "</sitemapindex>\n")
    lib.write_site_file(site, hp, "sm/pages.xml", urlset(
        [f"{base}/hidden/{i}.html" for i in (1, 2, 3)] + [f"{base}/hidden/2.html"]
        + ["http://127.0.0.39:9/offsite.html"] + [f"{base}/hidden/{i}.html" for i in (4, 5)]))
    lib.write_site_file(site, hp, "sm/more.xml.gz", gzip.compress(
        urlset([f"{base}/hidden/{i}.html" for i in (6, 7, 8)]).encode(), mtime=0))
    pages = {}
    for i in range(1, 9):
        lib.write_site_file(site, hp, f"hidden/{i}.html", lib.html_doc(f"hidden {i}"))
        pages[f"{base}/hidden/{i}.html"] = f"hidden {i}"
    return pages


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
    log = srv.read_log()[before:]
    return recs, collections.Counter(r["path"] for r in log if r["host"] == hp)


def check_reaped_marks(chk, tmp):
    """Run R: a slow copy of the site and a 1 s lease (see the docstring)."""
    tag = f"smreap-{os.getpid()}"  # the run's own topics, read back below
    topics = {f"TRAWLER_{k.upper()}_TOPIC": f"trawler.{tag}.{k}"
              for k in ("frontier", "pages", "items", "dlq")}
    slow = lib.SiteServer(tmp / "site-R", ["127.0.0.32:0"], tmp / "requests-R.jsonl",
                          extra_args=["--slow", "127.0.0.32:0=2.5"])
    try:
        hp = slow.start()[0]
        pages = build_site(tmp / "site-R", hp)
        env = {"TRAWLER_SITEMAPS": "1", "TRAWLER_LEASE": "1",
               "TRAWLER_HOST_CONNECTIONS": "16", **topics}
        recs, _ = crawl(chk, "R", tmp, hp, env, slow)
        got = {r["url"] for r in recs if r.get("status") == 200}
        missing = sorted(set(pages) - got)
        chk.check(not missing, "[R] every hidden page crawled", lib.show_list(missing))
        copies = []  # (url, metadata keys) of each re-enqueued request
        for payload in lib.kafka_messages(os.environ["TRAWLER_BROKERS"], topics[
                "TRAWLER_FRONTIER_TOPIC"]):
            text = lib.protoc_text(payload, "CrawlRequest")
            meta = dict(re.findall(r'metadata \{\s*key: "([^"]*)"\s*value: "([^"]*)"\s*\}', text))
            if meta.get("reaped") == "1":
                copies.append((lib.protoc_fields(text).get("url", ""), meta))
        sm = [(u, m) for u, m in copies if ".xml" in u]
        chk.info(f"[R] {len(copies)} re-enqueued copies, {len(sm)} of sitemaps")
        chk.check(sm, "[R] the lease re-enqueued sitemaps (else this run shows nothing)",
                  lib.show_list(u for u, _ in copies))
        bad = [u for u, m in sm if m.get("sitemap") != "1"]
        chk.check(sm and not bad, "[R] each re-enqueued sitemap is still marked a sitemap",
                  lib.show_list(bad))
        bad = [u for u, m in copies if ".xml" not in u and "sitemap" in m]
        chk.check(not bad, "[R] no re-enqueued page is marked a sitemap", lib.show_list(bad))
    finally:
        subprocess.run([str(lib.trawlerctl()), "delete-topics"], env=dict(os.environ, **topics),
                       capture_output=True, timeout=60)
        slow.stop()


def check_exact(chk, tag, recs, want):
    """want: {url: (status, title or None, extra dict)}; nothing else but robots.txt."""
    counts = collections.Counter(r.get("url") for r in recs)
    by = {r.get("url"): r for r in recs}
    bad = []
    for url, (status, title, extra) in sorted(want.items()):
        r = by.get(url)
        if counts[url] != 1:
            bad.append(f"{url}: {counts[url]} records, want 1")
            continue
        got = {"status": r.get("status"), **{k: r.get(k) for k in extra}}
        exp = {"status": status, **extra}
        if title is not None:
            got["title"], exp["title"] = r.get("title"), title
        if got != exp:
            bad.append(f"{url}: want {exp}, got {got}")
    bad += [f"unexpected record {lib.short_record(by[u])}" for u in counts
            if u not in want and urlsplit(str(u)).path != "/robots.txt"]
    chk.check(not bad, f"[{tag}] pages.jsonl: exactly the {len(want)} expected "
              "records", lib.show_list(bad))


def main():
    chk = lib.Checker("integration.test_sitemaps")
    if not lib.require_run_sh(chk):
        return chk.summary()
    lib.ensure_debian_package("kcat", "kcat")
    lib.ensure_debian_package("protoc", "protobuf-compiler")
    tmp = lib.make_tmpdir("trawler-sitemaps-")
    srv = lib.SiteServer(tmp / "site", ["127.0.0.31:0"], tmp / "requests.jsonl")
    try:
        with lib.shared_services(chk):
            hp = srv.start()[0]
            base = f"http://{hp}"
            pages = build_site(tmp / "site", hp)
            seed = {f"{base}/": (200, "seed page", {})}

            recs, req = crawl(chk, "N", tmp, hp, {}, srv)
            check_exact(chk, "N", recs, seed)
            asked = sorted(p for p in req if p not in ("/", "/robots.txt"))
            chk.check(not asked, "[N] without --sitemaps the server sees only / "
                      "and /robots.txt", lib.show_list(asked))

            recs, req = crawl(chk, "S", tmp, hp, {"TRAWLER_SITEMAPS": "1"}, srv)
            want = dict(seed)
            want[f"{base}/sitemap_index.xml"] = (200, None, {"sitemap": "index",
                                                            "followed": 2, "depth": 0})
            want[f"{base}/sm/pages.xml"] = (200, None, {"sitemap": "urlset",
                                                       "followed": 5, "depth": 1})
            want[f"{base}/sm/more.xml.gz"] = (200, None, {"sitemap": "urlset",
                                                         "followed": 3, "depth": 1})
            want.update({u: (200, t, {"depth": 2}) for u, t in pages.items()})
            check_exact(chk, "S", recs, want)
            bad = [f"{p}: requested {n} times" for p, n in sorted(req.items())
                   if n != 1 and p != "/robots.txt"]
            chk.check(not bad, "[S] server log: each sitemap and hidden page "
                      "requested exactly once", lib.show_list(bad))
            off = [r for r in srv.read_log() if r["host"] != hp]
            chk.check(not off, "[S] nothing offsite requested (127.0.0.39)",
                      lib.show_list(lib.fmt_req(r) for r in off))

            recs, req = crawl(chk, "C", tmp, hp, {"TRAWLER_SITEMAPS": "1",
                                                  "TRAWLER_SITEMAP_MAX_URLS": "2"}, srv)
            want = dict(seed)
            want[f"{base}/sitemap_index.xml"] = (200, None, {"sitemap": "index",
                                                            "followed": 2, "depth": 0})
            for sm, n in (("pages.xml", (1, 2)), ("more.xml.gz", (6, 7))):
                want[f"{base}/sm/{sm}"] = (200, None, {"sitemap": "urlset", "followed": 2,
                                                      "sitemap_truncated": True})
                for i in n:
                    want[f"{base}/hidden/{i}.html"] = (200, f"hidden {i}", {"depth": 2})
            check_exact(chk, "C", recs, want)

            check_reaped_marks(chk, tmp)
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
