"""Transactional mode (issue 5): pages in, frontier links, items and offsets
out in one Kafka transaction per batch; a reader of the items topic with
read_committed sees each page once, whatever crashes.

One producer and one consumer (--transactional --items) per scenario, on
their own topics and crawl:

1. before-commit: the consumer SIGKILLs itself in its 2nd batch after
   sending the offsets into the transaction, before committing it. A
   restart with the same transactional id aborts that transaction; the
   batch is redelivered. The aborted items are in the topic (a
   read_uncommitted reader sees more items than pages), a read_committed
   reader sees each page exactly once.
2. after-commit: the consumer SIGKILLs itself right after the commit,
   before marking the batch's pages done in Redis. Kafka never redelivers
   them; the restarted consumer settles their claims against the committed
   offsets (logged). With a 2 s lease the reaper would otherwise re-enqueue
   them (a second item each) or, skipping claimed URLs, the crawl would
   never complete.
3. reaped copy: a page served in 4 s with a 2 s lease is re-enqueued while
   its first fetch runs, and fetched twice; only one item comes out.

Each: trawlerctl wait exits 0, Redis admitted == done == pages, pending 0,
and `trawlerctl dump-items` (read_committed) holds each page's URL once
and exactly the site's URLs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

NPAGES = 30


def ctl(args, env, timeout=120):
    return subprocess.run([str(lib.trawlerctl())] + args, env=env, capture_output=True,
                          text=True, timeout=timeout)


def dump_items(env, cid, committed=True):
    args = ["dump-items"] + ([] if committed else ["--kafka.isolation.level=read_uncommitted"])
    r = ctl(args, env)
    urls = [json.loads(line).get("url") for line in r.stdout.splitlines() if line.strip()
            and json.loads(line).get("crawl_id") == cid]
    return r, urls


def status(env):
    r = ctl(["status"], env)
    f = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    return {k: int(f.get(k, -1)) for k in ("admitted", "pending", "done")}


def start(role, env, log, extra):
    cmd = [str(lib.build_dir() / f"trawler-{role}"), "--stop-timeout", "5"] + extra
    fh = open(log, "ab")
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                         stderr=subprocess.STDOUT)
    fh.close()
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None
    return p.returncode


def scenario(chk, tmp, name, server_host, pages, fault=None, lease=2, before_stop=None):
    cid = f"txn-{name}-{os.getpid()}"
    env = dict(os.environ)
    env.update({
        "TRAWLER_CRAWL_ID": cid,
        "TRAWLER_FRONTIER_TOPIC": f"trawler.{cid}.frontier",
        "TRAWLER_PAGES_TOPIC": f"trawler.{cid}.pages",
        "TRAWLER_ITEMS_TOPIC": f"trawler.{cid}.items",
        "TRAWLER_DLQ_TOPIC": f"trawler.{cid}.deadletter",
        "TRAWLER_PARTITIONS": "2",
        "TRAWLER_LEASE": str(lease),
    })
    logs = tmp / name
    logs.mkdir()
    r = ctl(["init"], env)
    if not chk.check(r.returncode == 0, f"{name}: trawlerctl init", r.stdout + r.stderr):
        return
    cons_opts = ["--transactional", "--items", "--worker-id", "c1", "--out", str(logs / "out"),
                 "--group", f"cons-{cid}"]
    prod = start("producer", env, logs / "producer.log",
                 ["--allow-private", "--delay", "0", "--host-connections", "2",
                  "--worker-id", "p1", "--group", f"prod-{cid}"])
    first = start("consumer", env, logs / "consumer-1.log",
                  cons_opts + (["--fault-crash-point", fault, "--fault-crash-batch", "2"]
                               if fault else []))
    procs = [prod, first]
    try:
        lib.wait_until(lambda: all("partitions assigned" in (logs / f).read_text(errors="replace")
                                   for f in ("producer.log", "consumer-1.log")), 30, 0.1)
        r = ctl(["seed", "--allow-private", f"http://{server_host}/"], env)
        chk.check(r.returncode == 0, f"{name}: seeded", r.stdout + r.stderr)
        if fault:
            try:
                rc = first.wait(60)
            except subprocess.TimeoutExpired:
                rc = None
            chk.check(rc == -signal.SIGKILL, f"{name}: the consumer killed itself at the "
                      f"{fault} point (status {rc})",
                      lib.tail((logs / "consumer-1.log").read_text(errors="replace"), 20))
            # same worker id, so the same transactional id: the restart
            # fences the dead one's transaction at once
            procs.append(start("consumer", env, logs / "consumer-2.log", cons_opts))
        w = ctl(["wait", "--wait-timeout", "90"], env, timeout=120)
        st = status(env)
        chk.check(w.returncode == 0, f"{name}: completion detected", w.stdout + w.stderr)
        chk.check(st["admitted"] == st["done"] == len(pages) and st["pending"] == 0,
                  f"{name}: Redis admitted == done == {len(pages)}, pending == 0", str(st))
        if before_stop:
            before_stop()
    finally:
        rcs = [stop(p) for p in procs]
    chk.check(all(rc in (0, -signal.SIGKILL) for rc in rcs),
              f"{name}: workers exit 0 on SIGTERM", str(rcs))
    r, urls = dump_items(env, cid)
    counts = Counter(urls)
    twice = sorted(u for u, n in counts.items() if n > 1)
    chk.check(r.returncode == 0, f"{name}: dump-items read the items topic to its end", r.stderr)
    chk.check(not twice, f"{name}: no page twice in the items topic (read_committed, "
              f"{len(urls)} items)", lib.show_list(twice))
    chk.check(set(counts) == set(pages), f"{name}: item URLs == the site's {len(pages)} pages",
              lib.show_list(sorted(set(pages) ^ set(counts))))
    return env, cid, logs


def main():
    chk = lib.Checker("integration.test_transactional")
    tmp = lib.make_tmpdir("trawler-txn-")
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"],
                                    tmp / "req.jsonl")
            a, b, c = server.start()
            pa = lib.write_linked_site(site, a, NPAGES)
            pb = lib.write_linked_site(site, b, NPAGES)
            pc = lib.write_linked_site(site, c, 6)
            # scenario 3: one page of host c is slow, the lease short
            lib.write_site_file(site, c, "p/3.html", lib.html_doc("slow", ["/", "/__slow/4"]))
            pc[f"http://{c}/__slow/4"] = None

            # 1. crash with the transaction open
            env, cid, _ = scenario(chk, tmp, "before-commit", a, pa, fault="before-commit")
            _, all_urls = dump_items(env, cid, committed=False)
            chk.check(len(all_urls) > len(pa),
                      "before-commit: the aborted transaction's items are in the topic "
                      f"(read_uncommitted sees {len(all_urls)} items for {len(pa)} pages)")

            # 2. crash between the commit and Redis done
            _, _, logs = scenario(chk, tmp, "after-commit", b, pb, fault="after-commit")
            log2 = (logs / "consumer-2.log").read_text(errors="replace")
            chk.check("marked done pages whose transaction had committed" in log2,
                      "after-commit: the restarted consumer settled the committed batch's "
                      "claims", lib.tail(log2, 20))

            # 3. a page re-enqueued by the lease while its first fetch runs
            def slow_fetches():
                return [x for x in server.read_log() if x["path"] == "/__slow/4"]

            def second_copy_consumed():
                # the crawl completes with the first copy; the second one's
                # result must reach the consumer before it is stopped
                lib.wait_until(lambda: len(slow_fetches()) >= 2, 20, 0.2)
                time.sleep(3)

            scenario(chk, tmp, "reaped", c, pc, before_stop=second_copy_consumed)
            slow = slow_fetches()
            chk.check(len(slow) >= 2, f"reaped: the slow page was fetched {len(slow)} times "
                      "(re-enqueued by the lease while in flight)")
            server.stop()
        ok = not chk.failed()
    finally:
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
