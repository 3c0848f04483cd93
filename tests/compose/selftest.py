#!/usr/bin/env python3
"""selftest.py - proves check.sh rejects broken deployment files.

Copies docker-compose.yml, deploy/Dockerfile and deploy/docker/prometheus.yml
to a temp dir, checks the unmodified copies pass, then applies one mutation
at a time (a typo in a key, a scale-breaking setting, an unknown TRAWLER_*
name, a root Dockerfile, ...) and requires `check.sh --files` to fail in the
stage expected to catch it. A mutation whose text is not found is itself a
failure, so the list cannot rot silently when the files change.

Usage: selftest.py CHECK_SH ROOT      (run by check.sh)
Exit 0 when every mutation is caught, 1 otherwise.
"""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

FILES = {
    "compose": "docker-compose.yml",
    "dockerfile": "deploy/Dockerfile",
    "prometheus": "deploy/docker/prometheus.yml",
}

# (what, file, old text, new text, stages that must report FAILED)
MUTATIONS = [
    ("typo in a key: depends_on -> depend_on (producer)", "compose",
     '    command: ["trawler-producer"]\n',
     '    command: ["trawler-producer"]\n    depend_on: [init]\n',
     {"client"}),
    ("typo in a key: restart -> restrat", "compose",
     "    restart: unless-stopped\n", "    restrat: unless-stopped\n",
     {"client"}),
    ("misspelt depends_on condition", "compose",
     "condition: service_completed_successfully",
     "condition: service_completed_sucessfully", {"client"}),
    ("restart: no unquoted (YAML boolean false)", "compose",
     'restart: "no"', "restart: no", {"client"}),
    ("broken indentation", "compose",
     "  redis:\n    image: redis:7.0\n", "  redis:\n   image: redis:7.0\n",
     {"client", "contract"}),
    ("kafka service renamed", "compose",
     "  kafka:\n    image: apache/kafka", "  broker:\n    image: apache/kafka",
     {"client", "contract"}),
    ("duplicate key in a service (v1 keeps the last silently)", "compose",
     '    command: ["trawler-producer"]\n',
     '    command: ["trawler-producer"]\n    restart: "no"\n', {"contract"}),
    ("container_name on producer (breaks --scale)", "compose",
     '    command: ["trawler-producer"]\n',
     '    command: ["trawler-producer"]\n    container_name: trawler-producer\n',
     {"contract"}),
    ("host port on consumer (breaks --scale)", "compose",
     '    command: ["trawler-consumer"]\n',
     '    command: ["trawler-consumer"]\n    ports: ["9100:9100"]\n',
     {"contract"}),
    ("unknown TRAWLER_* variable (TRAWLER_BROKER)", "compose",
     '      TRAWLER_OUT: "/data/out"\n',
     '      TRAWLER_OUT: "/data/out"\n      TRAWLER_BROKER: "kafka:9092"\n',
     {"contract"}),
    ("TRAWLER_OUT on the producer (a consumer-only option)", "compose",
     '    command: ["trawler-producer"]\n    environment:\n'
     '      <<: *trawler-env\n',
     '    command: ["trawler-producer"]\n    environment:\n'
     '      <<: *trawler-env\n      TRAWLER_OUT: "/data/out"\n',
     {"contract"}),
    ("TRAWLER_REDIS host is not a service", "compose",
     "redis://redis:6379/0", "redis://localhost:6379/0", {"contract"}),
    ("TRAWLER_BROKERS not an advertised listener", "compose",
     'TRAWLER_BROKERS: "kafka:9092"', 'TRAWLER_BROKERS: "kafka:29092"',
     {"contract"}),
    ("Kafka image off the 3.9 line", "compose",
     "apache/kafka:3.9.1", "apache/kafka:4.0.0", {"contract"}),
    ("Redis without persistence", "compose",
     '"--appendonly", "yes", ', "", {"contract"}),
    ("init waits only for kafka started", "compose",
     "      kafka:\n        condition: service_healthy\n      # trawlerctl",
     "      kafka:\n        condition: service_started\n      # trawlerctl",
     {"contract"}),
    ("consumer output volume removed", "compose",
     "    volumes:\n      - crawl-out:/data/out\n", "", {"contract"}),
    ("metrics port differs from the Prometheus scrape port", "compose",
     'TRAWLER_METRICS_PORT: "9100"', 'TRAWLER_METRICS_PORT: "9200"',
     {"contract"}),
    ("Grafana datasource provisioning not mounted", "compose",
     "      - ./deploy/docker/grafana/provisioning/datasources:"
     "/etc/grafana/provisioning/datasources:ro\n", "", {"contract"}),
    ("producer health check removed", "compose",
     '    healthcheck:\n      test: ["CMD", "trawlerctl", "health"]\n'
     '      interval: 15s\n      timeout: 10s\n      retries: 3\n'
     '      start_period: 30s\n    stop_grace_period: 30s\n'
     '    restart: unless-stopped\n\n  consumer:',
     '    stop_grace_period: 30s\n    restart: unless-stopped\n\n  consumer:',
     {"contract"}),
    ("Dockerfile without USER (runs as root)", "dockerfile",
     "\nUSER trawler\n", "\n", {"contract"}),
    ("Dockerfile USER root", "dockerfile",
     "\nUSER trawler\n", "\nUSER root\n", {"contract"}),
    ("Dockerfile single stage", "dockerfile",
     "\nFROM debian:bookworm-slim AS runtime\n", "\n", {"contract"}),
    ("typo in a Prometheus key: dns_sd_config", "prometheus",
     "dns_sd_configs:", "dns_sd_config:", {"promtool"}),
    ("Prometheus scrapes the wrong port", "prometheus",
     "port: 9100", "port: 9101", {"contract"}),
]


def stages_failed(output):
    """{'client', 'contract', 'promtool'} that printed FAILED."""
    failed = set()
    for line in output.splitlines():
        if line.startswith("stage ") and line.rstrip().endswith("FAILED"):
            failed.add(line.split()[1].rstrip(":"))
    return failed


def run(check, paths):
    p = subprocess.run([check, "--files", paths["compose"],
                        paths["dockerfile"], paths["prometheus"]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return p.returncode, p.stdout


def first_reason(output, stage):
    """First indented detail line after 'stage <stage>...: FAILED'."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("stage " + stage) and line.endswith("FAILED"):
            for detail in lines[i + 1:]:
                if not detail.startswith("    "):
                    break
                detail = detail.strip()
                if detail and not detail.startswith(("Checking ", "The Compose file")):
                    # "FAIL /tmp/.../file: msg" -> "file: msg"
                    return re.sub(r"^(FAIL )?(\S*/)?", "", detail)
    return ""


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: selftest.py CHECK_SH ROOT\n")
        return 2
    check, root = argv
    tmp = tempfile.mkdtemp(prefix="trawler-compose-selftest-")
    try:
        originals = {}
        for key, rel in FILES.items():
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                originals[key] = f.read()

        def materialise(name, mutation=None):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            paths = {}
            for key, rel in FILES.items():
                text = originals[key]
                if mutation and mutation[1] == key:
                    _, _, old, new, _ = mutation
                    if old not in text:
                        return None
                    text = text.replace(old, new, 1)
                paths[key] = os.path.join(d, os.path.basename(rel))
                with open(paths[key], "w", encoding="utf-8") as f:
                    f.write(text)
            return paths

        rc, out = run(check, materialise("control"))
        if rc != 0:
            print("selftest: the unmodified copies FAIL, cannot test "
                  "mutations:\n" + out)
            return 1

        def one(i_m):
            i, m = i_m
            paths = materialise("m%02d" % i, m)
            if paths is None:
                return m, None, ""
            return (m,) + run(check, paths)

        bad = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as ex:
            results = list(ex.map(one, enumerate(MUTATIONS)))
        for m, rc, out in results:
            what, _, _, _, expected = m
            if rc is None:
                print("selftest: STALE  %s: text to mutate not found in %s"
                      % (what, FILES[m[1]]))
                bad += 1
                continue
            failed = stages_failed(out)
            missing = expected - failed
            if rc == 0 or missing:
                print("selftest: MISSED %s (exit %d, failed stages %s, "
                      "expected %s)\n%s" % (what, rc, sorted(failed) or "none",
                                            sorted(expected), out))
                bad += 1
            else:
                stage = sorted(expected)[0]
                print("selftest: caught %-55s [%s] %s"
                      % (what, ",".join(sorted(failed)),
                         first_reason(out, stage)[:110]))
        if bad:
            print("selftest: %d of %d mutations not caught"
                  % (bad, len(MUTATIONS)))
            return 1
        print("selftest: all %d broken variants rejected, unmodified files "
              "accepted" % len(MUTATIONS))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
