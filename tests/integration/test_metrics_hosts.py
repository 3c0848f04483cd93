"""Which hosts hold the backlog: trawler_host_queue_depth_top{host}.

One producer (no consumer needed) with --delay 2 and its /metrics port, on
per-test topics. Seeds: 7 pages of host A and 3 of host B, so after each
host's first fetch A has 6 requests waiting and B 2, for at least the 2 s
politeness gap. /metrics is scraped every 0.2 s (the gauge is refreshed
every second).

Checks, on a scrape taken while both hosts are waiting: the family lists
A then B (deepest first) with A >= 4 and B >= 1 and A > B; the listed
depths add up to no more than trawler_host_queue_depth (the total); no
other host is listed. After SIGTERM the producer exits 0.
"""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

TOP = re.compile(r'^trawler_host_queue_depth_top\{host="([^"]*)"\} (\S+)$', re.M)


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    total = re.search(r"^trawler_host_queue_depth (\S+)$", text, re.M)
    return {"top": [(h, float(v)) for h, v in TOP.findall(text)],
            "total": float(total.group(1)) if total else None}


def main():
    chk = lib.Checker("integration.test_metrics_hosts")
    tmp = lib.make_tmpdir("trawler-metrics-hosts-")
    build = lib.build_dir()
    ctl = str(lib.trawlerctl())
    proc = None
    ok = False
    try:
        with lib.shared_services(chk):
            site = tmp / "site"
            with lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0"], tmp / "req.jsonl") as srv:
                a, b = srv.hostports
                seeds = []
                for host, n in ((a, 7), (b, 3)):
                    for i in range(n):
                        lib.write_site_file(site, host, f"{i}.html", lib.html_doc(f"{host} {i}"))
                        seeds.append(f"http://{host}/{i}.html")
                cid = f"mhosts-{os.getpid()}"
                port = lib.free_port("127.0.0.1")
                env = lib.crawl_env(cid, TRAWLER_METRICS_BIND="127.0.0.1")
                if not lib.ctl_init(chk, env):
                    return chk.summary()
                log = tmp / "producer.log"
                with open(log, "wb") as fh:
                    proc = subprocess.Popen(
                        [str(build / "trawler-producer"), "--allow-private", "--delay", "2",
                         "--group", f"trawler-producers.{cid}", "--metrics-port", str(port)],
                        env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
                ready = lib.wait_until(
                    lambda: "partitions assigned" in log.read_text(errors="replace"), 60, 0.2)
                chk.check(ready, "producer has its partitions", lib.tail(log.read_text(), 10))
                r = subprocess.run([ctl, "seed", "--allow-private"] + seeds, env=env,
                                   capture_output=True, text=True, timeout=60)
                chk.check(r.returncode == 0, "seeded 7 + 3 URLs", r.stderr)
                seen = []
                good = None
                deadline = time.time() + 20
                while time.time() < deadline and good is None:
                    m = scrape(port)
                    if m is not None:
                        seen.append(m)
                        top = dict(m["top"])
                        if top.get(a, 0) >= 4 and top.get(b, 0) >= 1:
                            good = m
                    time.sleep(0.2)
                chk.check(good is not None, "a scrape shows both hosts waiting, A >= 4, B >= 1",
                          lib.show_list(seen[-10:]))
                if good:
                    hosts = [h for h, _ in good["top"]]
                    depth = dict(good["top"])
                    chk.check(hosts == [a, b] and depth[a] > depth[b],
                              "listed deepest first, no other host", good)
                    chk.check(good["total"] is not None and sum(depth.values()) <= good["total"],
                              "listed depths add up to at most the total queue depth", good)
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=60)
                chk.check(rc == 0, "producer exits 0 on SIGTERM", f"exit {rc}")
                proc = None
        ok = not chk.failed()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
