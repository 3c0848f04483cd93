"""Workers' /metrics scraped during and after a crawl and checked against
the crawl's own output; trawlerctl progress output when not a terminal;
`trawlerctl health` against the running workers, a stopped one and a
stand-in server (stale heartbeat, trawler_up 0, HTTP 500); graceful stop
on SIGTERM (exit 0).

Runs the binaries directly (not through run.sh) so the workers stay up
after completion and can be scraped.
"""

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
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
    return text, values


def main():
    chk = lib.Checker("integration.test_metrics_progress")
    tmp = lib.make_tmpdir("trawler-metrics-")
    ok = False
    procs = []
    try:
        with lib.shared_services(chk):
            build = lib.build_dir()
            site = tmp / "site"
            server = lib.SiteServer(site, ["127.0.0.2:0", "127.0.0.3:0"], tmp / "req.jsonl")
            hosts = server.start()
            # a robots.txt that refuses one directory, to see refusals counted
            manifest = lib.generate_site(site, hosts, 120, seed=7)
            lib.write_site_file(site, hosts[0], "robots.txt",
                                b"User-agent: *\nDisallow: /special/\n")
            cid = f"metrics-{os.getpid()}"
            out = tmp / "out"
            pport, cport = lib.free_port("127.0.0.1"), lib.free_port("127.0.0.1")
            env = dict(os.environ, TRAWLER_CRAWL_ID=cid, TRAWLER_METRICS_BIND="127.0.0.1",
                       TRAWLER_LOG_FORMAT="json")
            procs.append(subprocess.Popen(
                [str(build / "trawler-consumer"), "--out", str(out), "--metrics-port", str(cport)],
                env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "consumer.log", "wb")))
            procs.append(subprocess.Popen(
                [str(build / "trawler-producer"), "--allow-private", "--delay", "0",
                 "--host-connections", "2", "--metrics-port", str(pport)],
                env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "producer.log", "wb")))
            lib.wait_until(lambda: _up(pport) and _up(cport), 20)
            _, before = scrape(pport)
            chk.check(before.get("trawler_up") == 1.0, "producer /metrics answers with trawler_up 1")
            seed = subprocess.run([str(build / "trawlerctl"), "seed", "--allow-private"]
                                  + manifest["seeds"], env=env, capture_output=True, text=True,
                                  timeout=60)
            chk.check(seed.returncode == 0, "seeded", seed.stderr)
            wait = subprocess.run([str(build / "trawlerctl"), "wait", "--wait-timeout", "120"],
                                  env=env, capture_output=True, text=True, timeout=180)
            chk.check(wait.returncode == 0, "trawlerctl wait exits 0 on completion", wait.stderr)
            # progress output, not a terminal: plain lines, no carriage returns
            lines = wait.stdout.splitlines()
            pat = re.compile(r"^crawl=\S+ admitted=\d+ pending=\d+ done=\d+ failed=\d+ "
                             r"rate=[\d.]+/s elapsed=[\d.]+s( complete)?$")
            chk.check("\r" not in wait.stdout and "\033" not in wait.stdout,
                      "progress output has no terminal control characters when piped")
            chk.check(lines and all(pat.match(l) for l in lines),
                      "every progress line has done, pending, rate, errors (failed), elapsed",
                      "\n".join(lines[:5]))
            chk.check(lines and lines[-1].endswith(" complete") and " pending=0 " in lines[-1],
                      "last progress line reports complete with pending=0", lines[-1:] or "")
            time.sleep(1.2)  # one more completion check inside the consumer
            records, _ = lib.read_jsonl(out / "pages.jsonl")
            ptext, p = scrape(pport)
            _, c = scrape(cport)
            classes = Counter()
            refused = 0
            for r in records:
                if r.get("error") == "robots_disallowed":
                    refused += 1
                elif r.get("error") and not r.get("status"):
                    classes["error"] += 1
                else:
                    classes[f"{r['status'] // 100}xx"] += 1
            for cls in ("2xx", "3xx", "4xx", "5xx", "error"):
                got = p.get(f'trawler_fetches_total{{status_class="{cls}"}}')
                chk.check(got == classes[cls], f"fetches_total{{{cls}}} == pages.jsonl count",
                          f"metrics {got}, pages.jsonl {classes[cls]}")
            chk.check(refused > 0 and p.get("trawler_robots_refusals_total") == refused,
                      "robots refusals counted", f"metrics {p.get('trawler_robots_refusals_total')}"
                      f", pages.jsonl {refused}")
            body = sum(r.get("bytes", 0) for r in records)
            chk.check(p.get("trawler_fetch_bytes_total") == body, "fetch_bytes_total == sum of bytes",
                      f"metrics {p.get('trawler_fetch_bytes_total')}, pages.jsonl {body}")
            fetched = sum(classes.values())
            chk.check(p.get("trawler_fetch_duration_seconds_count") == fetched,
                      "duration histogram counts every fetch")
            chk.check(c.get("trawler_pages_processed_total") == len(records),
                      "consumer pages_processed_total == pages.jsonl lines",
                      f"metrics {c.get('trawler_pages_processed_total')}, lines {len(records)}")
            chk.check(c.get("trawler_links_admitted_total") == len(records) - len(manifest["seeds"]),
                      "links_admitted_total == pages - seeds")
            chk.check(c.get(f'trawler_crawl_pending{{crawl="{cid}"}}') == 0.0, "crawl_pending gauge 0")
            chk.check("# TYPE trawler_fetch_duration_seconds histogram" in ptext,
                      "exposition format declares types")
            # health: the heartbeat is recent and trawlerctl health passes
            for name, port, vals in (("producer", pport, p), ("consumer", cport, c)):
                beat = vals.get("trawler_heartbeat_timestamp_seconds") or 0
                chk.check(abs(time.time() - beat) < 5, f"{name} heartbeat within 5 s of now",
                          f"heartbeat {beat}, now {time.time()}")
                h = health(build, port)
                chk.check(h.returncode == 0 and "healthy" in h.stdout,
                          f"trawlerctl health passes for the running {name}",
                          h.stdout + h.stderr)
            check_health_failures(chk, build)
            # graceful stop
            t0 = time.time()
            for pr in procs:
                pr.send_signal(signal.SIGTERM)
            rcs = [pr.wait(timeout=40) for pr in procs]
            chk.check(rcs == [0, 0], "both workers exit 0 on SIGTERM", f"exit codes {rcs}")
            chk.check(time.time() - t0 < 35, "and within the stop timeout")
            logs = (tmp / "producer.log").read_text().splitlines()
            chk.check(logs and all(_is_json(l) for l in logs), "JSON log lines, one event per line",
                      "\n".join(l for l in logs if not _is_json(l))[:500])
            h = health(build, pport)
            chk.check(h.returncode == 1 and "127.0.0.1:%d" % pport in h.stderr,
                      "trawlerctl health fails, naming the port, once the producer is gone",
                      f"exit {h.returncode}: {h.stderr}")
            server.stop()
        ok = not chk.failed()
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


def health(build, port, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAWLER_METRICS")}
    return subprocess.run([str(build / "trawlerctl"), "health", "--metrics-port", str(port),
                           *extra], env=env, capture_output=True, text=True, timeout=30)


def check_health_failures(chk, build):
    """trawlerctl health against a stand-in metrics server: a stale
    heartbeat (a stuck main loop), trawler_up 0, no heartbeat, HTTP 500,
    and no --metrics-port at all."""
    body = {"text": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, text = (500, "") if body["text"] is None else (200, body["text"])
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        now = time.time()
        cases = [
            (f"trawler_up 1\ntrawler_heartbeat_timestamp_seconds {now - 1:.3f}\n", (), 0,
             "healthy"),
            (f"trawler_up 1\ntrawler_heartbeat_timestamp_seconds {now - 100:.3f}\n", (), 1,
             "main loop stuck"),
            (f"trawler_up 1\ntrawler_heartbeat_timestamp_seconds {now - 100:.3f}\n",
             ("--health-max-age", "300"), 0, "healthy"),
            (f"trawler_up 0\ntrawler_heartbeat_timestamp_seconds {now:.3f}\n", (), 1,
             "trawler_up is not 1"),
            ("trawler_up 1\n", (), 1, "no trawler_heartbeat_timestamp_seconds"),
            (None, (), 1, "no metrics"),
        ]
        for text, extra, want_rc, want_msg in cases:
            body["text"] = text
            h = health(build, port, *extra)
            chk.check(h.returncode == want_rc and want_msg in (h.stdout + h.stderr),
                      f"trawlerctl health {' '.join(extra)} on {want_msg!r}: exit {want_rc}",
                      f"exit {h.returncode}: {h.stdout}{h.stderr}")
        h = health(build, 0)
        chk.check(h.returncode == 2 and "--metrics-port" in h.stderr,
                  "trawlerctl health without a port: exit 2, says --metrics-port", h.stderr)
    finally:
        srv.shutdown()
        srv.server_close()


def _up(port):
    try:
        scrape(port)
        return True
    except OSError:
        return False


def _is_json(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
