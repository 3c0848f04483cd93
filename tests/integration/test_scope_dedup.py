"""Scope and trap controls, and both dedup modes, through ./run.sh:

1. rel=nofollow links and pages with <meta name=robots content=nofollow>
   are not followed (noindex is flagged); tracking parameters (utm_*) are
   stripped so ?utm_source=x is the same page; --deny-regex keeps /private/
   out; --max-url-length drops a very long link; --max-pages-per-host caps a
   spider trap (an endless calendar) at exactly N admitted URLs.
2. The same site crawled with --dedup bloom gives the same set of pages,
   and `trawlerctl stats` reports the Bloom filter; exact mode's dedup
   memory per URL is reported too.
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def build_site(site, h):
    w = lib.write_site_file
    w(site, h, "index.html", lib.html_doc("index", [
        "/a.html", "/a.html?utm_source=news&utm_medium=mail", "/private/secret.html",
        "/" + "x" * 300 + ".html", "/cal/0.html", "/meta-nofollow.html"])
      + '<a rel="nofollow" href="/nofollowed.html">n</a>')
    w(site, h, "a.html", lib.html_doc("a", ["/b.html"]))
    w(site, h, "b.html", lib.html_doc("b", []))
    w(site, h, "nofollowed.html", lib.html_doc("should not be fetched", []))
    w(site, h, "private/secret.html", lib.html_doc("private", []))
    w(site, h, "meta-nofollow.html",
      '<html><head><title>meta</title><meta name="robots" content="noindex, nofollow"></head>'
      '<body><a href="/behind-meta.html">x</a></body></html>')
    w(site, h, "behind-meta.html", lib.html_doc("should not be fetched", []))
    for i in range(200):  # a spider trap: every day links to the next
        w(site, h, f"cal/{i}.html", lib.html_doc(f"day {i}", [f"/cal/{i + 1}.html"]))
    return {f"http://{h}/", f"http://{h}/a.html", f"http://{h}/b.html",
            f"http://{h}/meta-nofollow.html"}


def crawl(tmp, name, h, env):
    res = lib.run_trawler(["--allow-private", "--delay", "0", "--crawl-id", name,
                           "--out", str(tmp / name), f"http://{h}/"], timeout=180,
                          env_extra=env)
    recs, _ = lib.read_jsonl(tmp / name / "pages.jsonl")
    return res, recs


def main():
    chk = lib.Checker("integration.test_scope_dedup")
    tmp = lib.make_tmpdir("trawler-scope-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl")
            (h,) = server.start()
            core = build_site(site, h)
            env = {"TRAWLER_DENY_REGEX": "/private/", "TRAWLER_MAX_URL_LENGTH": "200",
                   "TRAWLER_MAX_PAGES_PER_HOST": "20"}
            pid = os.getpid()
            res, recs = crawl(tmp, f"scope-exact-{pid}", h, env)
            chk.check(res.rc == 0, "crawl completes", lib.tail(res.output))
            urls = Counter(r["url"] for r in recs)
            cal = [u for u in urls if "/cal/" in u]
            chk.check(core <= set(urls), "the in-scope pages are crawled", sorted(core - set(urls)))
            chk.check(not [u for u in urls if "utm_" in u] and urls[f"http://{h}/a.html"] == 1,
                      "utm_* parameters stripped: a.html fetched once", dict(urls))
            for bad in ("nofollowed.html", "behind-meta.html", "/private/", "x" * 300):
                chk.check(not [u for u in urls if bad in u], f"not followed: {bad[:20]}")
            meta = [r for r in recs if r["url"].endswith("/meta-nofollow.html")]
            chk.check(meta and meta[0].get("noindex") is True, "noindex flagged", meta)
            # 20 per host: the 4 core pages + the calendar fill the cap
            chk.check(len(urls) == 20 and len(cal) == 16,
                      "--max-pages-per-host 20 caps the spider trap",
                      f"{len(urls)} pages, {len(cal)} calendar pages")
            exact_set = set(urls)

            ctl = str(lib.trawlerctl())
            st = subprocess.run([ctl, "stats", "--crawl-id", f"scope-exact-{pid}"],
                                capture_output=True, text=True, timeout=30)
            chk.check(st.returncode == 0 and "dedup_mode=exact" in st.stdout,
                      "trawlerctl stats reports exact mode", st.stdout + st.stderr)

            res, recs = crawl(tmp, f"scope-bloom-{pid}", h,
                              dict(env, TRAWLER_DEDUP="bloom", TRAWLER_BLOOM_CAPACITY="10000"))
            chk.check(res.rc == 0, "bloom crawl completes", lib.tail(res.output))
            chk.check({r["url"] for r in recs} == exact_set,
                      "bloom mode crawls the same pages as exact mode")
            st = subprocess.run([ctl, "stats", "--crawl-id", f"scope-bloom-{pid}"],
                                capture_output=True, text=True, timeout=30)
            chk.check(st.returncode == 0 and "dedup_mode=bloom" in st.stdout and
                      "bloom_k=7" in st.stdout and "false_positive_rate=" in st.stdout,
                      "trawlerctl stats reports the Bloom filter (k=7 at 1%)", st.stdout)
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
