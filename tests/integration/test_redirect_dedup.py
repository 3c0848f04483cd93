"""A redirect target is deduplicated like any other URL: the index links
to a redirect that lands on /deep.html, and /deep.html is linked again two
levels later; the server must see /deep.html requested exactly once, and
pages.jsonl has it once (as the redirect's final URL)."""

import sys
import urllib.parse
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def main():
    chk = lib.Checker("integration.test_redirect_dedup")
    tmp = lib.make_tmpdir("trawler-redir-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl")
            (h,) = server.start()
            target = f"http://{h}/deep.html"
            redir = "/__redirect_to?url=" + urllib.parse.quote(target, safe="")
            lib.write_site_file(site, h, "index.html", lib.html_doc("index", [redir, "/a.html"]))
            lib.write_site_file(site, h, "a.html", lib.html_doc("a", ["/b.html"]))
            lib.write_site_file(site, h, "b.html", lib.html_doc("b", ["/deep.html"]))
            lib.write_site_file(site, h, "deep.html", lib.html_doc("deep", []))
            res = lib.run_trawler(["--allow-private", "--delay", "0", "--out", str(tmp / "out"),
                                   f"http://{h}/"], timeout=120)
            chk.check(res.rc == 0, "crawl completes", lib.tail(res.output))
            seen = Counter(r["path"] for r in server.read_log())
            chk.check(seen["/deep.html"] == 1, "the redirect target was requested exactly once",
                      f"requests: {dict(seen)}")
            recs, _ = lib.read_jsonl(tmp / "out" / "pages.jsonl")
            urls = Counter(r["url"] for r in recs)
            chk.check(urls[target] == 1, "pages.jsonl has the target once", dict(urls))
            via = [r for r in recs if r["url"] == target]
            chk.check(via and via[0].get("redirects") == 1 and "requested_url" in via[0],
                      "it came through the redirect (requested_url, redirects: 1)", via)
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
