"""Completion is exact (issue 5):

1. It never fires early: a page held in flight by a slow server (4 s)
   while everything else finishes quickly. Redis' pending count, polled
   throughout, never reads 0 before the slow page is done; trawlerctl wait
   returns only after it, and the slow page is in pages.jsonl.
2. Stuck work is re-enqueued: the consumer is told to drop the first 5
   links it admits (as if it died between admission and publish), with a
   2 s lease. The lease reaper finds them; the crawl completes with every
   page exactly once.
"""

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def poll_pending(cid, stop, samples):
    ctl = str(lib.trawlerctl())
    while not stop.is_set():
        r = subprocess.run([ctl, "status", "--crawl-id", cid], capture_output=True, text=True)
        if r.returncode == 0:
            fields = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
            samples.append((time.time(), int(fields.get("admitted", 0)),
                            int(fields.get("pending", -1))))
        time.sleep(0.05)


def main():
    chk = lib.Checker("integration.test_completion")
    tmp = lib.make_tmpdir("trawler-completion-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0"], tmp / "req.jsonl")
            a, b = server.start()
            pages = lib.write_linked_site(site, a, 30)
            pages.update(lib.write_linked_site(site, b, 30))
            # one page on host a links to a resource that takes 4 s
            lib.write_site_file(site, a, "p/5.html", lib.html_doc(
                "slow linker", ["/", "/p/6.html", "/__slow/4"]))
            slow_url = f"http://{a}/__slow/4"

            # 1. never early
            cid = f"early-{os.getpid()}"
            stop, samples = threading.Event(), []
            poller = threading.Thread(target=poll_pending, args=(cid, stop, samples))
            poller.start()
            res = lib.run_trawler(["--allow-private", "--delay", "0", "--host-connections", "4",
                                   "--crawl-id", cid, "--out", str(tmp / "out1"),
                                   f"http://{a}/", f"http://{b}/"], timeout=120)
            stop.set()
            poller.join()
            chk.check(res.rc == 0, "crawl with a slow page completes", lib.tail(res.output))
            recs, _ = lib.read_jsonl(tmp / "out1" / "pages.jsonl")
            urls = [r["url"] for r in recs]
            chk.check(slow_url in urls, "the slow page is in pages.jsonl")
            log = server.read_log()
            slow_end = max((r["t_end"] for r in log if r["path"] == "/__slow/4"), default=None)
            others_end = max(r["t_end"] for r in log if r["path"] != "/__slow/4")
            chk.check(slow_end and slow_end - others_end > 2,
                      "the rest of the crawl finished well before the slow page",
                      f"slow done {slow_end}, others done {others_end}")
            seen = [s for s in samples if s[1] > 0]
            early = [s for s in seen if s[2] == 0 and slow_end and s[0] < slow_end]
            chk.check(len(seen) > 20, f"pending polled throughout ({len(seen)} samples)")
            chk.check(not early, "pending never read 0 while the slow page was in flight",
                      f"{len(early)} samples at 0 before {slow_end}: {early[:3]}")
            chk.check(min(s[2] for s in seen if s[0] < (slow_end or 0) - 0.5) >= 1,
                      "pending >= 1 until the slow page was done")

            # 2. stuck work re-enqueued after the lease (without the slow page:
            # a fetch longer than the lease is legitimately enqueued twice)
            lib.write_site_file(site, a, "p/5.html", lib.html_doc(
                f"{a} page 5", ["/", "/p/6.html"]))
            log_before = len(server.read_log())
            cid2 = f"lease-{os.getpid()}"
            res = lib.run_trawler(["--allow-private", "--delay", "0", "--host-connections", "4",
                                   "--crawl-id", cid2, "--out", str(tmp / "out2"),
                                   f"http://{a}/", f"http://{b}/"], timeout=120,
                                  env_extra={"TRAWLER_FAULT_SKIP_PUBLISH": "5",
                                             "TRAWLER_LEASE": "2"})
            chk.check(res.rc == 0, "crawl with 5 dropped links completes", lib.tail(res.output))
            recs, _ = lib.read_jsonl(tmp / "out2" / "pages.jsonl")
            counts = Counter(r["url"] for r in recs)
            want = set(pages)
            chk.check(set(counts) == want, "every page reached despite the dropped links",
                      f"missing {sorted(want - set(counts))[:5]}, extra {sorted(set(counts) - want)[:5]}")
            chk.check(all(v == 1 for v in counts.values()), "each page once in pages.jsonl",
                      [u for u, v in counts.items() if v > 1][:5])
            clog = (tmp / "out2" / "logs" / "consumer-1.log").read_text()
            chk.check("re-enqueued URLs whose lease ran out" in clog and "count=5" in clog,
                      "the consumer log reports 5 URLs re-enqueued by the reaper",
                      [l for l in clog.splitlines() if "lease" in l])
            fetched = Counter((r["host"], r["path"]) for r in server.read_log()[log_before:])
            chk.check(all(v == 1 for v in fetched.values()),
                      "server saw each URL once in the second crawl",
                      [p for p, v in fetched.items() if v > 1][:5])
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
