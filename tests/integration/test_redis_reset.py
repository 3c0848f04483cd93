"""A Redis connection reset never stops a worker (regression test).

The bug: a consumer whose first Redis command after a reset was a
crawl-info read (HMGET of the crawl's meta hash) for a crawl it had no
cached copy of lost that reply on the dead connection, reconnected fine,
and took the lost reply for "Redis unavailable": exit 1.
tr_crawl_info_load now re-sends the read once after a reconnect.

Deterministic: one producer and one consumer (started directly, shared
Kafka, per-run topics) against their OWN redis-server (deploy/local/
redis.sh), so that `CLIENT KILL TYPE normal` drops exactly their
connections and nobody else's. The workers run with --crawl-id
CID-workers, a crawl that is never seeded, so the consumer's lease reaper
(--lease 8: due every 2 s) reads its info from Redis every time and never
has a stale copy to fall back on; the URLs are seeded into crawl CID.

1. Seed host A's root into CID; wait until CID is complete (pending 0).
2. Twice: SIGSTOP the consumer, kill every Redis client connection, wait
   6 s (longer than the 5 s crawl-info cache, CRAWL_INFO_TTL_MS, and the
   reaper's period), SIGCONT it: its first Redis command is the reaper's
   crawl-info read (its loop reaps before its twice-a-second status read,
   and no page is waiting). Then seed more URLs of CID: a new path on host
   A and the root of a new host (the producer's first Redis commands after
   the reset are its robots.txt cache and politeness reads for that host).
   Wait until CID is complete again.

Checks: each kill dropped the workers' connections (CLIENT KILL count >= 2
and both logs say "redis connection lost"); each round completes with
admitted == done; both workers are still running after each round;
pages.jsonl holds every page; SIGTERM stops both with exit 0.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

FREEZE = 6.0        # seconds the consumer is stopped: > CRAWL_INFO_TTL_MS (5 s)
# and > its reaper's period
LEASE = 8           # --lease: the consumer's reaper runs every LEASE/4 = 2 s
ROUND_TIMEOUT = 60  # seconds for a round to complete


def status(ctl, env, cid):
    r = subprocess.run([ctl, "status", "--crawl-id", cid], env=env,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
            if v.lstrip("-").isdigit()}


def wait_done(ctl, env, cid, want_done, timeout):
    """Until done >= want_done and pending == 0; the last status read."""
    last = [None]

    def ok():
        last[0] = status(ctl, env, cid)
        return bool(last[0]) and last[0].get("done", 0) >= want_done \
            and last[0].get("pending", -1) == 0
    lib.wait_until(ok, timeout, 0.3)
    return last[0]


def site_dir(site, hostport, rel, npages, prefix):
    """DIR/rel/index.html linking to DIR/rel/1..npages-1.html; their URLs."""
    n = npages - 1
    urls = [f"http://{hostport}/{rel}/"]
    lib.write_site_file(site, hostport, f"{rel}/index.html", lib.html_doc(
        f"{prefix} index", [f"/{rel}/{i}.html" for i in range(1, n + 1)]))
    for i in range(1, n + 1):
        lib.write_site_file(site, hostport, f"{rel}/{i}.html",
                            lib.html_doc(f"{prefix} {i}", [f"/{rel}/"]))
        urls.append(f"http://{hostport}/{rel}/{i}.html")
    return urls


def main():
    chk = lib.Checker("integration.test_redis_reset")
    tmp = lib.make_tmpdir("trawler-redis-reset-")
    build = lib.build_dir()
    ctl = str(lib.trawlerctl())
    procs = {}
    server = None
    redis = lib.OwnRedis(tmp / "svc")
    ok = False
    try:
        with lib.shared_services(chk):
            if not redis.start(chk):
                return chk.summary()
            url, port = redis.url, redis.port
            cid = f"redis-reset-{os.getpid()}"
            env = lib.crawl_env(cid, TRAWLER_REDIS=url, TRAWLER_LEASE=str(LEASE))
            env["TRAWLER_CRAWL_ID"] = f"{cid}-workers"  # never seeded: never cached
            chk.info(f"redis {url}, Kafka {env.get('TRAWLER_BROKERS')}, crawl {cid}")

            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"],
                                    tmp / "req.jsonl")
            a, b, c = server.start()
            rounds = [
                ([f"http://{a}/"], list(lib.write_linked_site(site, a, 6))),
                ([f"http://{a}/r2/", f"http://{b}/"],
                 site_dir(site, a, "r2", 4, "r2") + list(lib.write_linked_site(site, b, 3))),
                ([f"http://{a}/r3/", f"http://{c}/"],
                 site_dir(site, a, "r3", 4, "r3") + list(lib.write_linked_site(site, c, 3))),
            ]

            if not lib.ctl_init(chk, env):
                return chk.summary()
            out = tmp / "out"
            logs = {}
            for role, extra in (("producer", ["--allow-private", "--delay", "0",
                                              "--group", f"trawler-producers.{cid}"]),
                                ("consumer", ["--out", str(out),
                                              "--group", f"trawler-consumers.{cid}"])):
                logs[role] = tmp / f"{role}.log"
                with open(logs[role], "wb") as fh:
                    procs[role] = subprocess.Popen(
                        [str(build / f"trawler-{role}"), "--worker-id", f"{role}-1"] + extra,
                        env=env, stdin=subprocess.DEVNULL, stdout=fh,
                        stderr=subprocess.STDOUT)
            ready = lib.wait_until(lambda: all(
                "partitions assigned" in logs[k].read_text(errors="replace")
                for k in logs), 60, 0.2)
            chk.check(ready, "both workers have their partitions",
                      {k: lib.tail(v.read_text(errors="replace"), 10)
                       for k, v in logs.items()})

            expected = []
            for n, (seeds, urls) in enumerate(rounds, 1):
                if n > 1:
                    lost_before = {k: v.read_text(errors="replace").count(
                        "redis connection lost") for k, v in logs.items()}
                    procs["consumer"].send_signal(signal.SIGSTOP)
                    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port,
                                        "CLIENT", "KILL", "TYPE", "normal"],
                                       capture_output=True, text=True, timeout=30)
                    killed = int(r.stdout.strip()) if r.stdout.strip().isdigit() else -1
                    chk.check(killed >= 2, f"round {n}: CLIENT KILL TYPE normal dropped "
                              f"the workers' connections ({killed})", r.stdout + r.stderr)
                    time.sleep(FREEZE)
                    procs["consumer"].send_signal(signal.SIGCONT)
                    time.sleep(0.5)  # its reaper's crawl-info read meets the reset
                r = subprocess.run([ctl, "seed", "--allow-private", "--crawl-id", cid] + seeds,
                                   env=env, capture_output=True, text=True, timeout=60)
                chk.check(r.returncode == 0, f"round {n}: seeded {seeds}", r.stdout + r.stderr)
                expected += urls
                st = wait_done(ctl, env, cid, len(expected), ROUND_TIMEOUT)
                chk.check(st and st.get("done") == len(expected) and
                          st.get("admitted") == len(expected),
                          f"round {n}: crawl complete, done == admitted == {len(expected)}",
                          f"status {st}")
                for role, p in procs.items():
                    chk.check(p.poll() is None, f"round {n}: the {role} is still running",
                              f"exited {p.returncode}:\n"
                              + lib.tail(logs[role].read_text(errors="replace"), 25))
                if n > 1:
                    for role, log in logs.items():
                        text = log.read_text(errors="replace")
                        chk.check(text.count("redis connection lost") > lost_before[role]
                                  and "redis reconnected" in text,
                                  f"round {n}: the {role} lost its Redis connection "
                                  "and reconnected",
                                  lib.tail(text, 15))

            for role, p in procs.items():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for role, p in procs.items():
                try:
                    rc = p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    rc = p.wait()
                chk.check(rc == 0, f"the {role} exits 0 after SIGTERM (rc {rc})",
                          lib.tail(logs[role].read_text(errors="replace"), 25))
            recs, _ = lib.read_jsonl(out / "pages.jsonl")
            got = {rec["url"] for rec in recs}
            chk.check(got == set(expected), f"pages.jsonl holds all {len(expected)} pages",
                      f"missing {sorted(set(expected) - got)[:5]}, "
                      f"extra {sorted(got - set(expected))[:5]}")
            subprocess.run([ctl, "delete-topics"], env=env, capture_output=True, timeout=120)
        ok = not chk.failed()
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if server is not None:
            server.stop()
        redis.stop()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
