#!/usr/bin/env python3
"""validate_compose.py - trawler's deployment contract for docker-compose.yml.

The Compose client (`docker-compose config -q`, run by check.sh) checks the
file against the Compose specification. This script checks what no schema
knows: the topology is the one the local run uses, workers can be scaled,
every TRAWLER_* variable is one the binaries accept, hosts named in the
worker environment are services of this file, the image is multi-stage and
runs as non-root, and Prometheus and Grafana point at what the workers
serve.

Usage:
  validate_compose.py [--root DIR] [--compose FILE] [--dockerfile FILE]
                      [--prometheus FILE] [--allowed-env FILE]
                      [--dashboard-metrics FILE]
  validate_compose.py --print-env SERVICE     # KEY=VALUE lines, sorted

Exit status: 0 when every check passes, 1 with one line per problem
otherwise, 2 on bad usage or unreadable input. Needs python3 and PyYAML.
"""

import argparse
import glob
import json
import os
import re
import sys
from urllib.parse import urlparse

try:
    import yaml
except ImportError:  # check.sh installs python3-yaml; say so when run alone
    sys.stderr.write("validate_compose.py: PyYAML missing "
                     "(apt-get install python3-yaml)\n")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

REQUIRED_SERVICES = ("kafka", "redis", "init", "producer", "consumer")
SCALED = {"producer": "trawler-producer", "consumer": "trawler-consumer"}
MONITORING = ("prometheus", "grafana")
DOCKERFILE = "deploy/Dockerfile"
IMAGE = "trawler:latest"
# Environment every trawler service needs, and what each worker adds.
ENV_ALL = ("TRAWLER_BROKERS", "TRAWLER_REDIS")
ENV_WORKER = ("TRAWLER_METRICS_PORT",)
ENV_CONSUMER = ("TRAWLER_OUT",)


class Report:
    """Collects problems; one line each, prefixed with the file they are in."""

    def __init__(self):
        self.problems = []

    def fail(self, where, msg):
        self.problems.append("%s: %s" % (where, msg))


def rel(path):
    """Path relative to the repository when inside it, else absolute."""
    path = os.path.abspath(path)
    if path.startswith(ROOT + os.sep):
        return os.path.relpath(path, ROOT)
    return path


BINARY_OF = {"trawler-producer": "producer", "trawler-consumer": "consumer",
             "trawlerctl": "ctl"}


def read_env_allowlist(path):
    """{NAME: set of binaries it applies to, or None for any}.
    Lines: NAME [producer] [consumer] [ctl]; '#' starts a comment."""
    allowed = {}
    for line in read_list(path):
        parts = line.split()
        allowed[parts[0]] = set(parts[1:]) or None
    return allowed


def read_list(path):
    """Names one per line; '#' starts a comment."""
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


# --- YAML -----------------------------------------------------------------

def duplicate_keys(text):
    """Explicit duplicate mapping keys (PyYAML and docker-compose v1 keep
    the last one silently; docker compose v2 rejects the file). Keys coming
    in through a '<<' merge may be overridden and are not counted."""
    dups = []
    seen_nodes = set()

    def walk(node, path):
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    continue
                if isinstance(knode, yaml.ScalarNode):
                    k = knode.value
                    line = knode.start_mark.line + 1
                    if k in first:
                        dups.append("%s%s: key given twice (lines %d and %d)"
                                    % (path, k, first[k], line))
                    else:
                        first[k] = line
                    walk(vnode, "%s%s." % (path, k))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, "%s%d." % (path, i))

    for doc in yaml.compose_all(text, Loader=yaml.SafeLoader):
        walk(doc, "")
    return dups


def load_yaml(path, report):
    where = rel(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        report.fail(where, "cannot read: %s" % e)
        return None
    try:
        for d in duplicate_keys(text):
            report.fail(where, d)
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        report.fail(where, "not valid YAML: %s" % str(e).replace("\n", " "))
        return None


# --- compose helpers --------------------------------------------------------

def env_of(svc):
    """The service's environment as a dict (mapping or KEY=VALUE list)."""
    env = svc.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): ("" if v is None else str(v)) for k, v in env.items()}
    out = {}
    for item in env:
        k, _, v = str(item).partition("=")
        out[k] = v
    return out


def command_of(svc):
    cmd = svc.get("command")
    if cmd is None:
        return []
    if isinstance(cmd, str):
        return cmd.split()
    return [str(c) for c in cmd]


def depends_of(svc):
    """{service: condition}; the short list form means service_started."""
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started")
            for k, v in dep.items()}


def mounts_of(svc):
    """[(source, target)] for short and long volume syntax."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) == 1:
                out.append((None, parts[0]))
            else:
                out.append((parts[0], parts[1]))
        elif isinstance(v, dict):
            out.append((v.get("source"), v.get("target")))
    return out


def is_bind(source):
    return source is not None and (source.startswith(".")
                                   or source.startswith("/")
                                   or source.startswith("~"))


def build_of(svc):
    b = svc.get("build")
    if b is None:
        return None
    if isinstance(b, str):
        return {"context": b, "dockerfile": "Dockerfile"}
    return {"context": b.get("context", "."),
            "dockerfile": b.get("dockerfile", "Dockerfile")}


def healthcheck_ok(svc):
    hc = svc.get("healthcheck")
    if not isinstance(hc, dict) or hc.get("disable"):
        return False
    test = hc.get("test")
    if test is None or test == ["NONE"]:
        return False
    return True


def hc_text(svc):
    test = (svc.get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def interpolate_default(value):
    """${VAR:-default} / ${VAR-default} -> default (for the checks only)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1",
                  str(value))


# --- compose checks ------------------------------------------------------

def check_compose(doc, compose_path, allowed_env, report):
    where = rel(compose_path)
    base = ROOT  # the project directory: relative paths resolve here
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        report.fail(where, "no 'services' mapping")
        return {}
    services = doc["services"]
    declared_volumes = set((doc.get("volumes") or {}).keys())

    for name in REQUIRED_SERVICES:
        if name not in services:
            report.fail(where, "service '%s' missing (topology: kafka, redis, "
                        "init, producer, consumer)" % name)
    for name in REQUIRED_SERVICES:
        if name in services and services[name].get("profiles"):
            report.fail(where, "services.%s: has profiles %s; the core "
                        "topology must start without --profile"
                        % (name, services[name]["profiles"]))
    for name in MONITORING:
        if name not in services:
            report.fail(where, "service '%s' missing (monitoring profile)"
                        % name)
        elif "monitoring" not in (services[name].get("profiles") or []):
            report.fail(where, "services.%s: not in the 'monitoring' profile"
                        % name)

    for name, svc in services.items():
        if not isinstance(svc, dict):
            report.fail(where, "services.%s: not a mapping" % name)
            continue
        at = "%s: services.%s" % (where, name)
        for dep, cond in depends_of(svc).items():
            if dep not in services:
                report.fail(at, "depends_on unknown service '%s'" % dep)
        for source, target in mounts_of(svc):
            if source is None:
                continue
            if is_bind(source):
                path = os.path.normpath(os.path.join(
                    base, os.path.expanduser(source)))
                if not os.path.exists(path):
                    report.fail(at, "bind mount source %s does not exist"
                                % source)
            elif source not in declared_volumes:
                report.fail(at, "named volume '%s' not declared under "
                            "top-level volumes" % source)
        b = build_of(svc)
        if b is not None:
            ctx = os.path.normpath(os.path.join(base, b["context"]))
            if not os.path.isdir(ctx):
                report.fail(at, "build context %s does not exist"
                            % b["context"])
            elif not os.path.isfile(os.path.join(ctx, b["dockerfile"])):
                report.fail(at, "build dockerfile %s does not exist"
                            % b["dockerfile"])
        # The environment contract: only names the binaries accept.
        if svc.get("env_file") and (b is not None
                                    or svc.get("image") == IMAGE):
            report.fail(at, "env_file on a trawler service: keep the "
                        "TRAWLER_* environment visible in docker-compose.yml")
        binary = BINARY_OF.get((command_of(svc) or [""])[0])
        for k in env_of(svc):
            if not k.startswith("TRAWLER_"):
                continue
            if k not in allowed_env:
                report.fail(at, "environment %s is not an option the "
                            "binaries accept (allow-list: %s)"
                            % (k, rel(ALLOWED_ENV_PATH)))
            elif (binary and allowed_env[k] is not None
                  and binary not in allowed_env[k]):
                report.fail(at, "environment %s does not apply to %s "
                            "(only %s, per %s)"
                            % (k, binary, " ".join(sorted(allowed_env[k])),
                               rel(ALLOWED_ENV_PATH)))

    kafka = services.get("kafka") or {}
    redis = services.get("redis") or {}
    check_kafka(kafka, "%s: services.kafka" % where, report)
    check_redis(redis, "%s: services.redis" % where, report)

    trawler = {n: s for n, s in services.items()
               if isinstance(s, dict) and (s.get("image") == IMAGE
                                           or build_of(s))}
    for name in ("init",) + tuple(SCALED):
        if name in services and name not in trawler:
            report.fail("%s: services.%s" % (where, name),
                        "not the trawler image (image %s built from %s)"
                        % (IMAGE, DOCKERFILE))
    for name, svc in trawler.items():
        check_trawler_service(name, svc, services, kafka,
                              "%s: services.%s" % (where, name), report)

    init = services.get("init")
    if isinstance(init, dict):
        at = "%s: services.init" % where
        if command_of(init)[:2] != ["trawlerctl", "init"]:
            report.fail(at, "command must be 'trawlerctl init', is %s"
                        % command_of(init))
        if init.get("restart", "no") != "no":
            report.fail(at, "one-shot: restart must be \"no\" (quoted), is %r"
                        % init.get("restart"))
        if depends_of(init).get("kafka") != "service_healthy":
            report.fail(at, "must depend on kafka with condition "
                        "service_healthy")

    for name, binary in SCALED.items():
        svc = services.get(name)
        if not isinstance(svc, dict):
            continue
        at = "%s: services.%s" % (where, name)
        for key, why in (("container_name", "a fixed name"),
                         ("ports", "host port bindings"),
                         ("hostname", "a fixed hostname (replicas would "
                          "share a client identity)")):
            if key in svc:
                report.fail(at, "%s set: %s breaks --scale %s=N"
                            % (key, why, name))
        if svc.get("network_mode") == "host":
            report.fail(at, "network_mode host breaks --scale (port clash)")
        if command_of(svc)[:1] != [binary]:
            report.fail(at, "command must start with %s, is %s"
                        % (binary, command_of(svc)))
        deps = depends_of(svc)
        if deps.get("init") != "service_completed_successfully":
            report.fail(at, "must depend on init with condition "
                        "service_completed_successfully")
        if deps.get("redis") != "service_healthy":
            report.fail(at, "must depend on redis with condition "
                        "service_healthy")
        if svc.get("restart") != "unless-stopped":
            report.fail(at, "restart must be unless-stopped, is %r"
                        % svc.get("restart"))
        env = env_of(svc)
        for k in ENV_WORKER + (ENV_CONSUMER if name == "consumer" else ()):
            if k not in env:
                report.fail(at, "environment %s missing" % k)
        port = env.get("TRAWLER_METRICS_PORT")
        if port is not None and not re.fullmatch(r"[0-9]{1,5}", port):
            report.fail(at, "TRAWLER_METRICS_PORT %r is not a port" % port)
        if not healthcheck_ok(svc) or "trawlerctl health" not in hc_text(svc):
            report.fail(at, "healthcheck must run trawlerctl health")
        elif port is None:
            report.fail(at, "trawlerctl health needs TRAWLER_METRICS_PORT")
        if name == "consumer" and "TRAWLER_OUT" in env:
            out = env["TRAWLER_OUT"]
            if not any(t == out and s and not is_bind(s)
                       for s, t in mounts_of(svc)):
                report.fail(at, "TRAWLER_OUT %s is not a named volume mount"
                            % out)

    images = {n: s.get("image") for n, s in trawler.items()}
    if len(set(images.values())) > 1:
        report.fail(where, "trawler services use different images: %s"
                    % images)
    return services


def check_kafka(svc, at, report):
    if not svc:
        return
    image = str(svc.get("image", ""))
    if not re.fullmatch(r"apache/kafka:3\.9(\.[0-9]+)?", image):
        report.fail(at, "image must be apache/kafka at the 3.9 line, is %r"
                    % image)
    env = env_of(svc)
    roles = set(env.get("KAFKA_PROCESS_ROLES", "").split(","))
    if roles != {"broker", "controller"}:
        report.fail(at, "KRaft single node: KAFKA_PROCESS_ROLES must be "
                    "broker,controller")
    node = env.get("KAFKA_NODE_ID")
    if not node:
        report.fail(at, "KAFKA_NODE_ID missing")
    voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    if node and not voters.startswith("%s@" % node):
        report.fail(at, "KAFKA_CONTROLLER_QUORUM_VOTERS must name node %s"
                    % node)
    for k, want in (("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
                    ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
                    ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
                    ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")):
        if env.get(k) != want:
            report.fail(at, "%s must be %s (one broker), is %r"
                        % (k, want, env.get(k)))
    for k in ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
              "KAFKA_CONTROLLER_LISTENER_NAMES"):
        if not env.get(k):
            report.fail(at, "%s missing" % k)
    logdirs = env.get("KAFKA_LOG_DIRS")
    if not logdirs:
        report.fail(at, "KAFKA_LOG_DIRS missing (data would live in /tmp)")
    elif not any(t == logdirs and s and not is_bind(s)
                 for s, t in mounts_of(svc)):
        report.fail(at, "no named volume mounted at KAFKA_LOG_DIRS %s"
                    % logdirs)
    if not healthcheck_ok(svc):
        report.fail(at, "healthcheck missing")
    elif not re.search(r"kafka-(broker-api-versions|topics)\.sh",
                       hc_text(svc)):
        report.fail(at, "healthcheck should run kafka-broker-api-versions.sh "
                    "or kafka-topics.sh")


def check_redis(svc, at, report):
    if not svc:
        return
    image = str(svc.get("image", ""))
    if not re.fullmatch(r"redis:7\.0(\.[0-9]+)?", image):
        report.fail(at, "image must be redis:7.0, is %r" % image)
    cmd = " ".join(command_of(svc))
    if not re.search(r"--appendonly\s+yes", cmd):
        report.fail(at, "persistence: command must pass --appendonly yes")
    if not any(t == "/data" and s and not is_bind(s)
               for s, t in mounts_of(svc)):
        report.fail(at, "no named volume mounted at /data")
    if not healthcheck_ok(svc) or "redis-cli" not in hc_text(svc):
        report.fail(at, "healthcheck must use redis-cli ping")


def check_trawler_service(name, svc, services, kafka, at, report):
    if svc.get("image") != IMAGE:
        report.fail(at, "image must be %s, is %r" % (IMAGE, svc.get("image")))
    b = build_of(svc)
    if b is None:
        report.fail(at, "no build section (context ., dockerfile %s)"
                    % DOCKERFILE)
    elif (os.path.normpath(b["context"]) != "."
          or os.path.normpath(b["dockerfile"]) != DOCKERFILE):
        report.fail(at, "build must be context . dockerfile %s, is %s"
                    % (DOCKERFILE, b))
    env = env_of(svc)
    for k in ENV_ALL:
        if k not in env:
            report.fail(at, "environment %s missing" % k)
    if "TRAWLER_BROKERS" in env:
        advertised = env_of(kafka).get("KAFKA_ADVERTISED_LISTENERS", "")
        adv = set(re.findall(r"://([^,]+)", advertised))
        for hp in env["TRAWLER_BROKERS"].split(","):
            host, _, port = hp.strip().rpartition(":")
            if host not in services:
                report.fail(at, "TRAWLER_BROKERS host '%s' is not a service"
                            % host)
            elif host == "kafka" and hp.strip() not in adv:
                report.fail(at, "TRAWLER_BROKERS %s is not an advertised "
                            "listener of kafka (%s)" % (hp, advertised))
    if "TRAWLER_REDIS" in env:
        u = urlparse(env["TRAWLER_REDIS"])
        if u.scheme not in ("redis", "rediss") or not u.hostname:
            report.fail(at, "TRAWLER_REDIS %r is not a redis:// URL"
                        % env["TRAWLER_REDIS"])
        elif u.hostname not in services:
            report.fail(at, "TRAWLER_REDIS host '%s' is not a service"
                        % u.hostname)
        elif not str(services[u.hostname].get("image", "")).startswith(
                "redis:"):
            report.fail(at, "TRAWLER_REDIS host '%s' is not the redis service"
                        % u.hostname)


# --- Dockerfile ----------------------------------------------------------

def dockerfile_instructions(text):
    """[(line_no, INSTRUCTION, args)] with continuations joined."""
    out, buf, start = [], "", 0
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = i
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        parts = buf.strip().split(None, 1)
        out.append((start, parts[0].upper(), parts[1] if len(parts) > 1
                    else ""))
        buf = ""
    return out


def check_dockerfile(path, report):
    where = rel(path)
    try:
        with open(path, encoding="utf-8") as f:
            ins = dockerfile_instructions(f.read())
    except OSError as e:
        report.fail(where, "cannot read: %s" % e)
        return
    stages = []  # [(name, base, [instructions])]
    for line, op, args in ins:
        if op == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?",
                         args, re.I)
            stages.append((m.group(2) or str(len(stages)), m.group(1), []))
        elif stages:
            stages[-1][2].append((line, op, args))
    if len(stages) < 2:
        report.fail(where, "multi-stage build expected (at least two FROM), "
                    "found %d" % len(stages))
        return
    names = [s[0] for s in stages]
    for i, (_, _, body) in enumerate(stages):
        for line, op, args in body:
            m = re.search(r"--from=(\S+)", args) if op == "COPY" else None
            if m and m.group(1) not in names[:i]:
                report.fail(where, "line %d: COPY --from=%s is not an "
                            "earlier stage" % (line, m.group(1)))
    name, base, body = stages[-1]
    if not re.fullmatch(r"debian:[a-z]+-slim", base):
        report.fail(where, "final stage must be a Debian slim image, is %s"
                    % base)
    users = [(line, args.strip()) for line, op, args in body if op == "USER"]
    if not users:
        report.fail(where, "final stage has no USER: the image would run "
                    "as root")
    else:
        line, user = users[-1]
        uname = user.split(":")[0]
        if uname in ("root", "0", ""):
            report.fail(where, "line %d: final USER is root" % line)
        elif not uname.isdigit():
            made = [a for _, op, a in body if op == "RUN"
                    and re.search(r"useradd\b.*\b%s\b" % re.escape(uname), a)]
            if not made:
                report.fail(where, "USER %s is never created with useradd "
                            "in the final stage" % uname)
            elif not any(re.search(r"--uid\s+[1-9][0-9]*", a) for a in made):
                report.fail(where, "user %s has no fixed non-zero --uid"
                            % uname)
    for line, op, args in body:
        if op == "RUN" and re.search(r"apt-get install", args):
            dev = re.findall(r"\b([a-z0-9.+-]+-dev)\b", args)
            extra = [p for p in dev] + [p for p in ("build-essential",
                                                   "cmake", "gcc")
                                       if re.search(r"\b%s\b" % p, args)]
            if extra:
                report.fail(where, "line %d: runtime stage installs build "
                            "packages %s" % (line, " ".join(extra)))
    if not any(op == "COPY" and "--from=" in a and "/opt/trawler/bin" in a
               for _, op, a in body):
        report.fail(where, "final stage does not copy /opt/trawler/bin from "
                    "the build stage")


# --- Prometheus and Grafana -------------------------------------------------

def check_prometheus(path, services, report):
    where = rel(path)
    doc = load_yaml(path, report)
    if not isinstance(doc, dict):
        if doc is not None:
            report.fail(where, "not a mapping")
        return
    scraped = {}  # service -> set(port)
    for job in doc.get("scrape_configs") or []:
        for sd in job.get("dns_sd_configs") or []:
            if sd.get("type", "SRV") != "A":
                continue
            for n in sd.get("names") or []:
                scraped.setdefault(n, set()).add(str(sd.get("port")))
    for name in SCALED:
        svc = services.get(name)
        if not isinstance(svc, dict):
            continue
        port = env_of(svc).get("TRAWLER_METRICS_PORT")
        if name not in scraped:
            report.fail(where, "no dns_sd_configs (type A) job scrapes "
                        "service '%s'" % name)
        elif port and port not in scraped[name]:
            report.fail(where, "service '%s' is scraped on port %s but "
                        "TRAWLER_METRICS_PORT is %s"
                        % (name, "/".join(sorted(scraped[name])), port))
    prom = services.get("prometheus") or {}
    if not any(s and is_bind(s) and os.path.normpath(
            os.path.join(ROOT, s)) == os.path.normpath(os.path.join(
                ROOT, "deploy/docker/prometheus.yml"))
            for s, _ in mounts_of(prom)):
        report.fail(where, "not mounted into the prometheus service")


def check_grafana(grafana_dir, services, metrics_allowed, report):
    graf = services.get("grafana") or {}
    mounts = {t: s for s, t in mounts_of(graf) if s and is_bind(s)}
    for sub in ("datasources", "dashboards"):
        want = os.path.join(grafana_dir, "provisioning", sub)
        target = "/etc/grafana/provisioning/" + sub
        src = mounts.get(target)
        parent = mounts.get("/etc/grafana/provisioning")
        if src is not None:
            ok = os.path.normpath(os.path.join(ROOT, src)) == os.path.normpath(want)
        elif parent is not None:
            ok = os.path.normpath(os.path.join(ROOT, parent)) == \
                os.path.normpath(os.path.dirname(want))
        else:
            ok = False
        if not ok:
            report.fail(rel(want), "not bind-mounted at %s in the grafana "
                        "service" % target)
    uids = set()
    for f in sorted(glob.glob(os.path.join(
            grafana_dir, "provisioning", "datasources", "*.y*ml"))):
        doc = load_yaml(f, report) or {}
        for ds in doc.get("datasources") or []:
            uids.add(ds.get("uid"))
            url = urlparse(interpolate_default(ds.get("url", "")))
            if ds.get("type") == "prometheus" and url.hostname not in services:
                report.fail(rel(f), "datasource url host '%s' is not a "
                            "service" % url.hostname)
    if not uids:
        report.fail(rel(grafana_dir), "no provisioned datasource with a uid")
    providers = []
    for f in sorted(glob.glob(os.path.join(
            grafana_dir, "provisioning", "dashboards", "*.y*ml"))):
        doc = load_yaml(f, report) or {}
        for p in doc.get("providers") or []:
            target = (p.get("options") or {}).get("path")
            src = mounts.get(target)
            if src is None:
                report.fail(rel(f), "provider path %s is not a bind mount of "
                            "the grafana service" % target)
            else:
                providers.append(os.path.normpath(os.path.join(ROOT, src)))
    if not providers:
        report.fail(rel(grafana_dir), "no dashboard provider")
    dashboards = []
    for d in providers:
        dashboards += sorted(glob.glob(os.path.join(d, "*.json")))
    if providers and not dashboards:
        report.fail(rel(grafana_dir), "no dashboard JSON in %s"
                    % ", ".join(rel(p) for p in providers))
    for f in dashboards:
        check_dashboard(f, uids, metrics_allowed, report)


def check_dashboard(path, uids, metrics_allowed, report):
    where = rel(path)
    try:
        with open(path, encoding="utf-8") as fh:
            dash = json.load(fh)
    except (OSError, ValueError) as e:
        report.fail(where, "not valid JSON: %s" % e)
        return
    if not dash.get("uid") or not dash.get("title"):
        report.fail(where, "dashboard needs a uid and a title")
    panels = list(dash.get("panels") or [])
    for p in list(panels):
        panels += p.get("panels") or []  # rows
    if not panels:
        report.fail(where, "no panels")
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        report.fail(where, "panel ids are not unique")
    base = re.compile(r"_(bucket|sum|count)$")
    for p in panels:
        for t in p.get("targets") or []:
            ds = t.get("datasource") or p.get("datasource") or {}
            if isinstance(ds, dict) and ds.get("uid") not in uids:
                report.fail(where, "panel '%s': datasource uid %r is not "
                            "provisioned" % (p.get("title"), ds.get("uid")))
            for m in re.findall(r"\btrawler_[a-z0-9_]+", t.get("expr", "")):
                name = base.sub("", m)
                if m not in metrics_allowed and name not in metrics_allowed:
                    report.fail(where, "panel '%s': metric %s is not in %s"
                                % (p.get("title"), m,
                                   rel(DASH_METRICS_PATH)))


# --- main ---------------------------------------------------------------

ALLOWED_ENV_PATH = os.path.join(HERE, "expected_env.txt")
DASH_METRICS_PATH = os.path.join(HERE, "dashboard_metrics.txt")


def main(argv):
    global ROOT, ALLOWED_ENV_PATH, DASH_METRICS_PATH
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=ROOT)
    ap.add_argument("--compose")
    ap.add_argument("--dockerfile")
    ap.add_argument("--prometheus")
    ap.add_argument("--grafana-dir")
    ap.add_argument("--allowed-env",
                    default=os.environ.get("TRAWLER_ENV_ALLOWLIST")
                    or ALLOWED_ENV_PATH)
    ap.add_argument("--dashboard-metrics", default=DASH_METRICS_PATH)
    ap.add_argument("--print-env", metavar="SERVICE")
    a = ap.parse_args(argv)
    ROOT = os.path.abspath(a.root)
    compose = a.compose or os.path.join(ROOT, "docker-compose.yml")
    dockerfile = a.dockerfile or os.path.join(ROOT, DOCKERFILE)
    prometheus = a.prometheus or os.path.join(ROOT,
                                              "deploy/docker/prometheus.yml")
    grafana_dir = a.grafana_dir or os.path.join(ROOT, "deploy/docker/grafana")
    ALLOWED_ENV_PATH = a.allowed_env
    DASH_METRICS_PATH = a.dashboard_metrics

    report = Report()
    doc = load_yaml(compose, report)
    if a.print_env:
        svc = ((doc or {}).get("services") or {}).get(a.print_env)
        if not isinstance(svc, dict):
            sys.stderr.write("no service %s in %s\n" % (a.print_env, compose))
            return 2
        for k, v in sorted(env_of(svc).items()):
            print("%s=%s" % (k, v))
        return 0
    try:
        allowed_env = read_env_allowlist(ALLOWED_ENV_PATH)
        metrics_allowed = set(read_list(DASH_METRICS_PATH))
    except OSError as e:
        sys.stderr.write("validate_compose.py: %s\n" % e)
        return 2

    services = {}
    if doc is not None:
        services = check_compose(doc, compose, allowed_env, report) or {}
    check_dockerfile(dockerfile, report)
    if services:  # the cross-checks need the compose file
        check_prometheus(prometheus, services, report)
        check_grafana(grafana_dir, services, metrics_allowed, report)
    else:
        load_yaml(prometheus, report)

    if report.problems:
        for p in report.problems:
            print("FAIL " + p)
        print("compose contract: %d problem(s)" % len(report.problems))
        return 1
    print("compose contract: OK (%d services; env allow-list %s)"
          % (len(services), rel(ALLOWED_ENV_PATH)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
