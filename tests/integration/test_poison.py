"""Poison messages never block the queue: random bytes, a truncated
CrawlRequest, an oversized value and an empty one on the frontier and the
pages topics go to the dead-letter topic with a reason; the workers keep
going and the crawl still completes with every page."""

import os
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def kcat_produce(brokers, topic, payloads):
    """One message per payload (binary-safe: -D with a delimiter unlikely in data)."""
    delim = b"\x1e\x1d\x1c\x1b"
    data = delim.join(payloads)
    r = subprocess.run(["kcat", "-P", "-b", brokers, "-t", topic, "-D", delim.decode("latin1"),
                        "-X", "message.max.bytes=10000000"], input=data, capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"kcat -P failed: {r.stderr.decode(errors='replace')}")


def main():
    chk = lib.Checker("integration.test_poison")
    lib.ensure_debian_package("kcat", "kcat")
    lib.ensure_debian_package("protoc", "protobuf-compiler")
    tmp = lib.make_tmpdir("trawler-poison-")
    ok = False
    procs = []
    try:
        with lib.shared_services(chk):
            build = lib.build_dir()
            brokers = os.environ["TRAWLER_BROKERS"]
            tag = f"poison{os.getpid()}"
            env = dict(os.environ, TRAWLER_CRAWL_ID=tag,
                       TRAWLER_FRONTIER_TOPIC=f"{tag}.frontier", TRAWLER_PAGES_TOPIC=f"{tag}.pages",
                       TRAWLER_ITEMS_TOPIC=f"{tag}.items", TRAWLER_DLQ_TOPIC=f"{tag}.dlq",
                       TRAWLER_PARTITIONS="2")
            subprocess.run([str(build / "trawlerctl"), "init"], env=env, check=True,
                           capture_output=True, timeout=60)
            rnd = random.Random(7)
            poison = [bytes(rnd.getrandbits(8) for _ in range(200)),  # random bytes
                      b"\x0a\xff\x01http://x",                         # truncated field
                      b"\xff" * (2 * 1024 * 1024),                     # oversized garbage
                      b"\x08\x01"]                                     # valid protobuf, no url
            kcat_produce(brokers, f"{tag}.frontier", poison)
            kcat_produce(brokers, f"{tag}.pages", poison)
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl")
            (host,) = server.start()
            pages = lib.write_linked_site(site, host, 12)
            out = tmp / "out"
            procs.append(subprocess.Popen([str(build / "trawler-consumer"), "--out", str(out)],
                                          env=env, stderr=open(tmp / "consumer.log", "wb")))
            procs.append(subprocess.Popen([str(build / "trawler-producer"), "--allow-private",
                                           "--delay", "0"], env=env,
                                          stderr=open(tmp / "producer.log", "wb")))
            subprocess.run([str(build / "trawlerctl"), "seed", "--allow-private", f"http://{host}/"],
                           env=env, check=True, capture_output=True, timeout=60)
            w = subprocess.run([str(build / "trawlerctl"), "wait", "--wait-timeout", "90"], env=env,
                               capture_output=True, text=True, timeout=120)
            chk.check(w.returncode == 0, "the crawl completes despite the poison", w.stderr)
            recs, _ = lib.read_jsonl(out / "pages.jsonl")
            chk.check({r["url"] for r in recs} == set(pages), "every page crawled",
                      f"{len(recs)} records for {len(pages)} pages")
            dls = [lib.protoc_fields(lib.protoc_text(p, "DeadLetter"))
                   for p in lib.kafka_messages(brokers, f"{tag}.dlq")]
            for topic, stage in ((f"{tag}.frontier", "producer:decode"),
                                 (f"{tag}.pages", "consumer:decode")):
                mine = [d for d in dls if d.get("source_topic") == topic]
                chk.check(len(mine) == len(poison),
                          f"{len(poison)} dead letters from {topic}",
                          f"got {len(mine)}: {[d.get('reason') for d in mine]}")
                chk.check(all(d.get("stage") == stage and d.get("reason") for d in mine),
                          f"each with stage {stage} and a reason")
            for pr in procs:
                pr.terminate()
            rcs = [pr.wait(timeout=60) for pr in procs]
            chk.check(rcs == [0, 0], "workers still healthy: exit 0 on SIGTERM", rcs)
            subprocess.run([str(build / "trawlerctl"), "delete-topics"], env=env,
                           capture_output=True, timeout=60)
            server.stop()
        ok = not chk.failed()
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
