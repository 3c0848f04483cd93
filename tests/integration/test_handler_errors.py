"""A failing handler never blocks the crawl: a JSON response that does
not parse, under a JSON extraction rule, goes to the dead-letter topic with
stage handler:json and the parser's reason; the page still counts as
processed (it is in pages.jsonl), valid JSON gets its fields, and the
crawl completes."""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def main():
    chk = lib.Checker("integration.test_handler_errors")
    lib.ensure_debian_package("kcat", "kcat")
    lib.ensure_debian_package("protoc", "protobuf-compiler")
    tmp = lib.make_tmpdir("trawler-handler-err-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl")
            (h,) = server.start()
            lib.write_site_file(site, h, "index.html",
                                lib.html_doc("index", ["/good.json", "/bad.json"]))
            lib.write_site_file(site, h, "good.json", b'{"product": {"name": "kettle"}}')
            lib.write_site_file(site, h, "bad.json", b'{"product": {"name": "kettle"')
            rules = tmp / "rules.txt"
            rules.write_text("name = json first product.name\n")
            cid = f"handler-err-{os.getpid()}"
            res = lib.run_trawler(["--allow-private", "--delay", "0", "--crawl-id", cid,
                                   "--extract", str(rules), "--out", str(tmp / "out"),
                                   f"http://{h}/"], timeout=120,
                                  env_extra={"TRAWLER_KEEP_TOPICS": "1"})
            chk.check(res.rc == 0, "crawl completes", lib.tail(res.output))
            recs, _ = lib.read_jsonl(tmp / "out" / "pages.jsonl")
            by = {r["url"].rsplit("/", 1)[-1]: r for r in recs}
            chk.check(set(by) == {"", "good.json", "bad.json"}, "all three pages processed",
                      sorted(by))
            chk.check(by.get("good.json", {}).get("fields") == {"name": "kettle"},
                      "valid JSON: field extracted", by.get("good.json"))
            chk.check("fields" not in by.get("bad.json", {"fields": 1}),
                      "invalid JSON: no fields, still recorded")
            dls = []
            for p in lib.kafka_messages(os.environ["TRAWLER_BROKERS"],
                                        f"trawler.{cid}.deadletter"):
                dls.append(lib.protoc_fields(lib.protoc_text(p, "DeadLetter")))
            chk.check(len(dls) == 1 and dls[0].get("stage") == "handler:json" and
                      "invalid JSON" in dls[0].get("reason", ""),
                      "one dead letter: stage handler:json, reason 'invalid JSON ...'", dls)
            subprocess.run([str(lib.trawlerctl()), "delete-topics"], env=lib.crawl_env(cid),
                           capture_output=True, timeout=60)
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
