"""Logs and messages never carry a page body or a secret.

A crawl through ./run.sh at --log-level debug (the most verbose) against
its OWN redis-server that requires a password (deploy/local/redis.sh, then
CONFIG SET requirepass), on a small site whose pages carry a unique marker
in their body text. An --extract rule copies that text into each page's
fields, so the marker passes through the handlers too; and one link points
to a missing page (a 404 path).

Checks:
- the crawl completes with every page, and the extracted field holds the
  marker (the body did go through the pipeline);
- neither the password nor the body marker appears in run.sh's output or
  in any worker log; run.sh names the Redis URL with the password masked;
- trawlerctl with a wrong password fails with "authentication failed" and
  never prints that password;
- an invalid Redis URL (bad port, bad database) is rejected with a message
  naming the URL, password masked;
- a Kafka pass-through option that may hold a secret (here the Java
  client's sasl.jaas.config, unknown to librdkafka) is rejected by name,
  its value not shown.
"""

import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

PAGES = 6


def main():
    chk = lib.Checker("integration.test_log_hygiene")
    tmp = lib.make_tmpdir("trawler-loghygiene-")
    ctl = str(lib.trawlerctl())
    secret = "pw-" + uuid.uuid4().hex
    marker = "bodymarker" + uuid.uuid4().hex
    redis = lib.OwnRedis(tmp / "svc")
    ok = False
    try:
        if not lib.require_run_sh(chk):
            return chk.summary()
        with lib.shared_services(chk):
            if not redis.start(chk):
                return chk.summary()
            port = redis.port
            r = subprocess.run(["redis-cli", "-p", port, "CONFIG", "SET", "requirepass",
                                secret], capture_output=True, text=True, timeout=30)
            if chk.check(r.returncode == 0 and "OK" in r.stdout, "requirepass set", r.stderr):
                redis.password = secret
            url = f"redis://:{secret}@127.0.0.1:{port}/0"

            site = tmp / "site"
            with lib.SiteServer(site, ["127.0.0.2:0"], tmp / "req.jsonl") as server:
                (host,) = server.hostports
                urls = [f"http://{host}/"] + [f"http://{host}/p/{i}.html"
                                              for i in range(1, PAGES)]
                lib.write_site_file(site, host, "index.html", lib.html_doc(
                    "index", [f"/p/{i}.html" for i in range(1, PAGES)] + ["/missing.html"],
                    body=f'<p class="secret">{marker} index</p>\n'))
                for i in range(1, PAGES):
                    lib.write_site_file(site, host, f"p/{i}.html", lib.html_doc(
                        f"page {i}", ["/"], body=f'<p class="secret">{marker} {i}</p>\n'))
                rules = tmp / "rules.txt"
                rules.write_text('text = xpath first //p[@class="secret"]\n')
                out = tmp / "out"
                res = lib.run_trawler(
                    ["--allow-private", "--delay", "0", "--out", str(out),
                     "--extract", str(rules), urls[0]], 150,
                    env_extra={"TRAWLER_REDIS": url, "TRAWLER_LOG_LEVEL": "debug"})
            chk.check(res.rc == 0, "run.sh with a password-protected Redis exits 0",
                      res.describe())
            recs, _ = lib.read_jsonl(out / "pages.jsonl")
            pages = {p["url"]: p for p in recs}
            chk.check(set(urls) <= set(pages), f"all {PAGES} pages crawled",
                      lib.show_list(sorted(set(urls) - set(pages))))
            fields = [p.get("fields", {}).get("text", "") for u, p in pages.items()
                      if u in urls]
            chk.check(len(fields) == PAGES and all(marker in f for f in fields),
                      "the body text went through the pipeline (extracted field)",
                      lib.show_list(fields))

            logs = sorted((out / "logs").glob("*.log"))
            texts = {"run.sh stdout": res.stdout, "run.sh stderr": res.stderr}
            texts.update({f"logs/{p.name}": p.read_text(errors="replace") for p in logs})
            debug_lines = sum(t.count("level=debug") for t in texts.values())
            chk.check(len(logs) >= 2 and debug_lines > 0,
                      f"worker logs at debug level ({len(logs)} logs, {debug_lines} debug lines)")
            for needle, what in ((secret, "the Redis password"), (marker, "page body text")):
                found = [name for name, t in texts.items() if needle in t]
                chk.check(not found, f"{what} appears in no log or output", found)
            chk.check(f"redis://:***@127.0.0.1:{port}/0" in res.stderr,
                      "run.sh names the Redis URL with the password masked",
                      lib.tail(res.stderr, 10))

            wrong = "wrong-" + uuid.uuid4().hex
            r = subprocess.run([ctl, "status", "--redis", f"redis://:{wrong}@127.0.0.1:{port}/0"],
                               capture_output=True, text=True, timeout=60)
            chk.check(r.returncode != 0 and "authentication failed" in r.stdout + r.stderr
                      and wrong not in r.stdout + r.stderr,
                      "wrong password: 'authentication failed', password not shown",
                      f"exit {r.returncode}: {r.stdout}{r.stderr}")
            for bad, why in ((f"redis://:{secret}@127.0.0.1:notaport/0", "invalid Redis URL"),
                             (f"redis://:{secret}@127.0.0.1:{port}/db", "invalid Redis database")):
                r = subprocess.run([ctl, "status", "--redis", bad],
                                   capture_output=True, text=True, timeout=60)
                text = r.stdout + r.stderr
                masked = bad.replace(secret, "***")
                chk.check(r.returncode != 0 and why in text and masked in text
                          and secret not in text,
                          f"{why}: named with the password masked",
                          f"exit {r.returncode}: {text}")
            # a Java client's setting that librdkafka does not know, holding a password
            jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required ' \
                   f'username="u" password="{secret}";'
            r = subprocess.run([ctl, "init", f"--kafka.sasl.jaas.config={jaas}"],
                               capture_output=True, text=True, timeout=60)
            text = r.stdout + r.stderr
            chk.check(r.returncode != 0 and "kafka option sasl.jaas.config rejected" in text
                      and secret not in text,
                      "a rejected secret-bearing kafka option is named, its value not shown",
                      f"exit {r.returncode}: {text}")
        ok = not chk.failed()
    finally:
        redis.stop()
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
