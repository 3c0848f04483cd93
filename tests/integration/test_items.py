"""Items on the Kafka items topic, read by a separate client (kcat) and
decoded against the published schema (protoc --decode with
proto/trawler.proto): one trawler.v1.Item per page with an HTTP response,
matching pages.jsonl."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def main():
    chk = lib.Checker("integration.test_items")
    lib.ensure_debian_package("protoc", "protobuf-compiler")
    lib.ensure_debian_package("kcat", "kcat")
    tmp = lib.make_tmpdir("trawler-items-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl")
            (host,) = server.start()
            pages = lib.write_linked_site(site, host, 15)
            cid = f"items-{os.getpid()}"
            res = lib.run_trawler(["--allow-private", "--delay", "0", "--crawl-id", cid,
                                   "--out", str(tmp / "out"), f"http://{host}/"], timeout=120,
                                  env_extra={"TRAWLER_ITEMS": "true", "TRAWLER_KEEP_TOPICS": "1"})
            chk.check(res.rc == 0, "crawl with --items completes", lib.tail(res.output))
            recs, _ = lib.read_jsonl(tmp / "out" / "pages.jsonl")
            items = []
            # run.sh names the topics after the crawl (and keeps them here)
            for payload in lib.kafka_messages(os.environ["TRAWLER_BROKERS"], f"trawler.{cid}.items"):
                try:
                    it = lib.protoc_fields(lib.protoc_text(payload, "Item"))
                except ValueError as e:
                    chk.check(False, "every item decodes against proto/trawler.proto", str(e))
                    continue
                if it.get("crawl_id") == cid:
                    items.append(it)
            by_url = {it["url"]: it for it in items}
            chk.check(len(items) == len(recs) == len(pages),
                      "one item per page", f"items {len(items)}, pages.jsonl {len(recs)}, "
                      f"site {len(pages)}")
            chk.check(set(by_url) == set(pages), "item URLs == the site's pages")
            bad = [u for u, t in pages.items() if by_url.get(u, {}).get("title") != t]
            chk.check(not bad, "item titles match", bad[:5])
            bad = [r["url"] for r in recs if str(r["status"]) != by_url.get(r["url"], {}).get("status")]
            chk.check(not bad, "item status == pages.jsonl status", bad[:5])
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
