"""The caps enforced inside the workers count their hits: one crawl hits
each of them once and the workers' /metrics show
trawler_limit_hits_total{limit=...} moving (docs/limits.md; the caps of
library functions are covered by tests/unit/test_limits.c).

Producer (--max-redirects 50 --retry-max 1 --max-queued 10 --delay 0.3):
  headers_kept        /__headers/T/1000/20   1000 response headers (100 kept)
  header_size         /__headers/T/100/1000  100 KB header block
  redirect_hops_kept  /__chain/T/40          40 hops (32 recorded)
  retry_wait          /__429/T/5             Retry-After: 5 > --retry-max 1
  queue_full          host B's index links to 30 pages: its host queue
                      passes 10 while --delay holds them
Consumer (--max-depth 2, --lease 8, an extract rule `xpath all //a/@href`):
  rule_values         /__manylinks/T/1500    1500 values (1000 taken)
  max_depth           /deep/1 -> /deep/2 -> /deep/3: /deep/3 is not followed
  scope_hosts         the crawl's scope in Redis is given 1100 more hosts;
                      the consumer's next crawl-info load keeps 1024

Checks: the crawl completes; each counter above is > 0 on its worker;
body_size (no body over the cap here) stays 0; both workers exit 0.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def hits(values, limit):
    return values.get(f'trawler_limit_hits_total{{limit="{limit}"}}')


def up(port):
    try:
        scrape(port)
        return True
    except OSError:
        return False


def main():
    chk = lib.Checker("integration.test_limit_counters")
    tmp = lib.make_tmpdir("trawler-limit-counters-")
    procs = {}
    server = None
    ok = False
    try:
        with lib.shared_services(chk):
            build = lib.build_dir()
            ctl = str(lib.trawlerctl())
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0"], tmp / "req.jsonl")
            a, b = server.start()
            tok = f"lc{os.getpid()}"
            lib.write_site_file(site, a, "index.html", lib.html_doc("limits index", [
                f"/__headers/{tok}/1000/20", f"/__headers/{tok}/100/1000",
                f"/__chain/{tok}/40", f"/__429/{tok}/5", f"/__manylinks/{tok}/1500",
                "/deep/1.html"]))
            for i in (1, 2, 3):
                lib.write_site_file(site, a, f"deep/{i}.html",
                                    lib.html_doc(f"deep {i}", [f"/deep/{i + 1}.html"]))
            lib.write_linked_site(site, b, 31)
            rules = tmp / "rules.txt"
            rules.write_text("links = xpath all //a/@href\n")

            cid = f"limit-counters-{os.getpid()}"
            env = lib.crawl_env(cid, TRAWLER_METRICS_BIND="127.0.0.1", TRAWLER_LEASE="8")
            if not lib.ctl_init(chk, env):
                return chk.summary()
            pport, cport = lib.free_port("127.0.0.1"), lib.free_port("127.0.0.1")
            out = tmp / "out"
            cmds = {
                "producer": ["--allow-private", "--delay", "0.3", "--max-redirects", "50",
                             "--retry-max", "1", "--max-queued", "10",
                             "--group", f"trawler-producers.{cid}", "--metrics-port", str(pport)],
                "consumer": ["--out", str(out), "--max-depth", "2", "--extract", str(rules),
                             "--group", f"trawler-consumers.{cid}", "--metrics-port", str(cport)],
            }
            for role, args in cmds.items():
                procs[role] = subprocess.Popen(
                    [str(build / f"trawler-{role}")] + args, env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=open(tmp / f"{role}.log", "wb"))
            chk.check(lib.wait_until(lambda: up(pport) and up(cport), 30, 0.2),
                      "both workers serve /metrics")
            before_p, before_c = scrape(pport), scrape(cport)
            names = ("headers_kept", "header_size", "redirect_hops_kept", "retry_wait",
                     "queue_full", "rule_values", "max_depth", "scope_hosts", "body_size")
            chk.check(all(hits(before_p, n) == 0 and hits(before_c, n) == 0 for n in names),
                      "every limit series exists at 0 before the crawl",
                      {n: (hits(before_p, n), hits(before_c, n)) for n in names})

            r = subprocess.run([ctl, "seed", "--allow-private", f"http://{a}/", f"http://{b}/"],
                               env=env, capture_output=True, text=True, timeout=60)
            chk.check(r.returncode == 0, "seeded both hosts", r.stdout + r.stderr)
            # 1100 more hosts in the crawl's scope (the real two stay first)
            meta = f"tr:{{{cid}}}:meta"
            rcli = ["redis-cli", "-u", os.environ["TRAWLER_REDIS"]]
            scope = subprocess.run(rcli + ["HGET", meta, "scope"], capture_output=True,
                                   text=True, timeout=30).stdout.strip()
            more = " ".join(f"h{i}.scope.invalid:80" for i in range(1100))
            r = subprocess.run(rcli + ["HSET", meta, "scope", f"{scope} {more} "],
                               capture_output=True, text=True, timeout=30)
            chk.check(r.returncode == 0 and a in scope and b in scope,
                      "scope grown to 1102 hosts", r.stdout + r.stderr + scope)

            wait = subprocess.run([ctl, "wait", "--wait-timeout", "120"], env=env,
                                  capture_output=True, text=True, timeout=180)
            chk.check(wait.returncode == 0, "the crawl completes", wait.stdout[-500:] + wait.stderr)
            # the scope is re-read within the crawl-info cache (5 s) or the reaper (2 s)
            lib.wait_until(lambda: (hits(scrape(cport), "scope_hosts") or 0) > 0, 15, 0.5)
            p, c = scrape(pport), scrape(cport)
            for role, vals, lims in (("producer", p, ("headers_kept", "header_size",
                                                      "redirect_hops_kept", "retry_wait",
                                                      "queue_full")),
                                     ("consumer", c, ("rule_values", "max_depth",
                                                      "scope_hosts"))):
                for lim in lims:
                    chk.check((hits(vals, lim) or 0) > 0,
                              f"{role}: trawler_limit_hits_total{{limit=\"{lim}\"}} moved "
                              f"({hits(vals, lim)})")
            chk.check(hits(p, "body_size") == 0, "body_size not hit: stays 0",
                      f"{hits(p, 'body_size')}")
            recs, _ = lib.read_jsonl(out / "pages.jsonl")
            urls = {rec["url"] for rec in recs}
            chk.check(f"http://{a}/deep/2.html" in urls and f"http://{a}/deep/3.html" not in urls,
                      "--max-depth 2: /deep/2 fetched, /deep/3 not followed")
            chain = [rec for rec in recs if rec["url"].endswith(f"/__chain/{tok}/0")
                     or rec.get("requested_url", "").endswith(f"/__chain/{tok}/40")]
            chk.check(chain and chain[0].get("status") == 200 and
                      chain[0].get("redirects") == 32,
                      "40-hop chain followed to its end, 32 hops recorded",
                      lib.short_record(chain[0]) if chain else "no record")

            for role, pr in procs.items():
                pr.send_signal(signal.SIGTERM)
            for role, pr in procs.items():
                try:
                    rc = pr.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    rc = pr.wait()
                chk.check(rc == 0, f"the {role} exits 0 on SIGTERM (rc {rc})",
                          lib.tail((tmp / f"{role}.log").read_text(errors="replace"), 20))
            subprocess.run([ctl, "delete-topics"], env=env, capture_output=True, timeout=120)
        ok = not chk.failed()
    finally:
        for pr in procs.values():
            if pr.poll() is None:
                pr.kill()
                pr.wait()
        if server is not None:
            server.stop()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
