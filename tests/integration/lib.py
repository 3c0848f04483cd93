"""Helpers for the integration tests (plain scripts, stdlib only).

- repo_root(), SITE_DIR
- SiteServer: tests/site/server.py on fresh ports (port 0), in a temp dir
- generate_site(): tests/site/gen_site.py, returns the manifest
- run_trawler(): ./run.sh from the repo root with a timeout, output
  captured (and optionally echoed), every process it spawns tracked through
  an environment marker so the test can tell what *this* run started
- Checker: named checks, a summary, an exit status
- for the fetch tests (test_fetch_*.py): shared_services(), site files
  (write_site_file, html_doc, write_linked_site), server-log analysis
  (by_host, start_gaps, max_concurrency, fmt_req), pages.jsonl look-ups
  (records_for, check_record), run_trawler_bg(), trawlerctl(),
  ensure_debian_package(), free_port()
"""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

MARKER_VAR = "TRAWLER_TEST_RUN_MARKER"


def repo_root():
    env = os.environ.get("TRAWLER_REPO_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "CMakeLists.txt").is_file() or not (root / "tests").is_dir():
        raise RuntimeError(f"cannot locate the repo root (tried {root})")
    return root


SITE_DIR = repo_root() / "tests" / "site"
sys.path.insert(0, str(SITE_DIR))
import sitecommon  # noqa: E402,F401  (re-exported for the tests)


# --------------------------------------------------------------------------
# Checks and reporting

class Checker:
    """Collects named checks; summary() prints them and returns the exit
    status (0 all passed, 1 otherwise)."""

    def __init__(self, name):
        self.name = name
        self.results = []   # (ok, name, detail)
        self.t0 = time.time()

    def check(self, ok, name, detail=""):
        ok = bool(ok)
        self.results.append((ok, name, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}", flush=True)
        if detail and not ok:
            for line in str(detail).rstrip().splitlines():
                print(f"       {line}")
        return ok

    def info(self, msg):
        print(f"[info] {msg}", flush=True)

    def failed(self):
        return [r for r in self.results if not r[0]]

    def summary(self):
        failed = self.failed()
        n = len(self.results)
        print("=" * 72)
        print(f"{self.name}: {n - len(failed)}/{n} checks passed "
              f"in {time.time() - self.t0:.1f}s")
        for _, name, _ in failed:
            print(f"  FAILED: {name}")
        print("RESULT: " + ("PASS" if not failed and n else "FAIL"))
        return 0 if not failed and n else 1


def show_list(items, limit=40):
    items = list(items)
    lines = [f"- {x}" for x in items[:limit]]
    if len(items) > limit:
        lines.append(f"... and {len(items) - limit} more")
    return "\n".join(lines)


def tail(text, n=40):
    lines = (text or "").rstrip().splitlines()
    return "\n".join(lines[-n:])


def make_tmpdir(prefix):
    return Path(tempfile.mkdtemp(prefix=prefix))


def cleanup_tmpdir(path, ok):
    """Remove on success (unless TRAWLER_KEEP_TMP is set); keep on failure."""
    if ok and not os.environ.get("TRAWLER_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"[info] kept temp dir {path}")


def read_jsonl(path):
    """-> (records, errors): errors are 'line N: problem' strings."""
    records, errors = [], []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as e:
                errors.append(f"line {n}: not JSON ({e}): {raw[:200]!r}")
                continue
            if not isinstance(rec, dict):
                errors.append(f"line {n}: not a JSON object: {raw[:200]!r}")
                continue
            records.append(rec)
    return records, errors


# --------------------------------------------------------------------------
# Site server and generator

class SiteServer:
    """tests/site/server.py as a child process.

    listens: ['127.0.0.2:0', ...]; after start(), .hostports holds the
    bound 'host:port' strings in the same order."""

    def __init__(self, root, listens, log_path, workdir=None, extra_args=(),
                 conn_log=None):
        self.root = Path(root)
        self.listens = list(listens)
        self.log_path = Path(log_path)
        self.workdir = Path(workdir) if workdir else self.log_path.parent
        self.extra_args = list(extra_args)    # e.g. ["--slow", "127.0.0.9:0=1"]
        self.conn_log = Path(conn_log) if conn_log else None
        self.proc = None
        self.hostports = None
        self.rc = None

    def start(self, timeout=15):
        self.root.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"ports-{uuid.uuid4().hex[:8]}.json"
        cmd = [sys.executable, str(SITE_DIR / "server.py"),
               "--root", str(self.root), "--log", str(self.log_path),
               "--port-file", str(port_file)]
        for lst in self.listens:
            cmd += ["--listen", lst]
        if self.conn_log:
            cmd += ["--conn-log", str(self.conn_log)]
        cmd += self.extra_args
        self.out_path = self.workdir / "server.out"
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server.py exited early:\n"
                                   + self.out_path.read_text(errors="replace"))
            if port_file.exists():
                self.hostports = json.loads(port_file.read_text())
                return self.hostports
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server.py did not write its port file in time")

    def stop(self, timeout=15):
        """SIGTERM, wait; returns the exit status (SIGKILL after timeout)."""
        if self.proc is None:
            return self.rc
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.rc = self.proc.returncode
        self.proc = None
        return self.rc

    def read_log(self):
        if not self.log_path.exists():
            return []
        recs, _ = read_jsonl(self.log_path)
        return recs

    def read_conn_log(self):
        if not self.conn_log or not self.conn_log.exists():
            return []
        recs, _ = read_jsonl(self.conn_log)
        return recs

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def generate_site(out, hosts, pages, seed=1, offscope=(), page_size=None,
                  links_per_page=None):
    cmd = [sys.executable, str(SITE_DIR / "gen_site.py"), "--out", str(out),
           "--hosts", ",".join(hosts), "--pages", str(pages),
           "--seed", str(seed)]
    if offscope:
        cmd += ["--offscope", ",".join(offscope)]
    if page_size is not None:
        cmd += ["--page-size", str(page_size)]
    if links_per_page is not None:
        cmd += ["--links-per-page", str(links_per_page)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"gen_site.py failed ({r.returncode}):\n"
                           f"{r.stdout}{r.stderr}")
    print(r.stdout.strip(), flush=True)
    return json.loads((Path(out) / "manifest.json").read_text())


def log_url(rec):
    """Absolute URL of a server log record."""
    return f"http://{rec['host']}{rec['path']}"


# --------------------------------------------------------------------------
# Processes

SERVICE_RE = re.compile(r"(^|/)(trawler-[\w-]+|trawlerctl|redis-server|java)"
                        r"(\s|$)|kafka\.Kafka|kafka-server-start")


def _read(path, binary=False):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return data if binary else data.decode("utf-8", "replace")
    except OSError:
        return None


def list_processes():
    """-> {pid: {"comm", "cmdline", "ppid", "environ"(bytes or None)}}"""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            continue
        try:
            rparen = stat.rindex(")")
            comm = stat[stat.index("(") + 1:rparen]
            ppid = int(stat[rparen + 2:].split()[1])
        except (ValueError, IndexError):
            continue
        cmd = _read(f"/proc/{pid}/cmdline", binary=True) or b""
        procs[pid] = {"comm": comm, "ppid": ppid,
                      "cmdline": cmd.replace(b"\0", b" ").decode(
                          "utf-8", "replace").strip(),
                      "environ": _read(f"/proc/{pid}/environ", binary=True)}
    return procs


def is_service(p):
    """A worker, broker or Redis; not trawlerctl, which run.sh uses to check
    seeds before it starts anything (slow enough to be seen under ASan)."""
    if p["comm"].startswith("trawlerctl"):
        return False
    return bool(p["comm"].startswith("trawler") or p["comm"] == "redis-server"
                or SERVICE_RE.search(p["cmdline"]))


def processes_with_marker(marker, procs=None):
    needle = f"{MARKER_VAR}={marker}".encode()
    procs = procs if procs is not None else list_processes()
    return {pid: p for pid, p in procs.items()
            if p["environ"] and needle in p["environ"].split(b"\0")}


def descendants(root_pid, procs):
    kids = {}
    for pid, p in procs.items():
        kids.setdefault(p["ppid"], []).append(pid)
    out, stack = set(), [root_pid]
    while stack:
        for c in kids.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def trawler_pids():
    return {pid for pid, p in list_processes().items()
            if p["comm"].startswith("trawler")}


class RunResult:
    def __init__(self):
        self.rc = None
        self.stdout = ""
        self.stderr = ""
        self.elapsed = 0.0
        self.timed_out = False
        self.marker = None
        self.seen = {}        # pid -> {"comm", "cmdline"} of spawned procs

    @property
    def output(self):
        return self.stdout + "\n" + self.stderr

    def services_seen(self):
        return {pid: p for pid, p in self.seen.items() if is_service(p)}

    def describe(self, n=40):
        return (f"exit status {self.rc}"
                f"{' (TIMED OUT, killed)' if self.timed_out else ''}, "
                f"{self.elapsed:.1f}s\n--- stdout (tail) ---\n{tail(self.stdout, n)}"
                f"\n--- stderr (tail) ---\n{tail(self.stderr, n)}")


def _pump(stream, sink, echo_prefix):
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        sink.append(line)
        if echo_prefix is not None:
            sys.stdout.write(echo_prefix + line)
            sys.stdout.flush()
    stream.close()


def run_trawler(args, timeout, env_extra=None, env_remove=(), echo=False,
                poll_interval=0.1):
    """Run ./run.sh ARGS from the repo root. Never hangs: after `timeout`
    seconds the process group gets SIGTERM, then SIGKILL, and every process
    carrying this run's marker is killed by pid.

    Tracks the processes it spawns (environment marker, or descendant of
    run.sh) in result.seen."""
    root = repo_root()
    res = RunResult()
    res.marker = uuid.uuid4().hex
    env = dict(os.environ)
    for k in env_remove:
        env.pop(k, None)
    env.update(env_extra or {})
    env[MARKER_VAR] = res.marker
    out_lines, err_lines = [], []
    t0 = time.time()
    proc = subprocess.Popen(["./run.sh", *args], cwd=root, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    pumps = [threading.Thread(target=_pump, daemon=True, args=(
                 proc.stdout, out_lines, "run.sh| " if echo else None)),
             threading.Thread(target=_pump, daemon=True, args=(
                 proc.stderr, err_lines, "run.sh! " if echo else None))]
    for t in pumps:
        t.start()

    def observe():
        procs = list_processes()
        ours = set(processes_with_marker(res.marker, procs))
        if proc.poll() is None:
            ours |= descendants(proc.pid, procs)
        for pid in ours:
            if pid != proc.pid and pid in procs and pid not in res.seen:
                res.seen[pid] = {"comm": procs[pid]["comm"],
                                 "cmdline": procs[pid]["cmdline"][:300]}

    while True:
        exited = proc.poll() is not None
        observe()       # once more after exit: catch late-spawned children
        if exited:
            break
        if time.time() - t0 > timeout:
            res.timed_out = True
            _kill_group(proc)
            break
        time.sleep(poll_interval)
    res.rc = proc.wait()
    res.elapsed = time.time() - t0
    if res.timed_out:
        kill_marker_processes(res.marker)
    for t in pumps:
        t.join(timeout=5)   # a leftover child may hold the pipe open
    res.stdout = "".join(out_lines)
    res.stderr = "".join(err_lines)
    if res.rc == 0 and "forced to exit at shutdown" in res.stderr:
        # the worker's watchdog hid a stuck shutdown: a bug, fail the run
        res.rc = 70
        res.stderr += "lib.py: a worker's shutdown watchdog fired: counted as a failure\n"
    return res


def _kill_group(proc):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


def kill_marker_processes(marker):
    """SIGTERM, then SIGKILL, the processes that carry this run's marker
    (all of them were started by the run.sh this test started)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_with_marker(marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not pids:
            return
        time.sleep(3)


def leftover_processes(marker, grace=10.0):
    """Processes still carrying the marker after `grace` seconds (zombies
    excluded): what run.sh started and did not stop."""
    deadline = time.time() + grace
    while True:
        left = {pid: p for pid, p in processes_with_marker(marker).items()
                if _read(f"/proc/{pid}/stat") and
                _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()[0] != "Z"}
        if not left or time.time() >= deadline:
            return {pid: f"{p['comm']}: {p['cmdline'][:200]}"
                    for pid, p in left.items()}
        time.sleep(0.5)


def require_run_sh(chk):
    """Fails the check (and returns False) when ./run.sh is missing."""
    p = repo_root() / "run.sh"
    return chk.check(p.is_file() and os.access(p, os.X_OK),
                     "./run.sh exists and is executable",
                     f"{p} missing or not executable")


# --------------------------------------------------------------------------
# Fetch-behaviour tests (test_fetch_*.py)

def build_dir():
    """The build run.sh uses: TRAWLER_BUILD_DIR, else REPO/build."""
    env = os.environ.get("TRAWLER_BUILD_DIR")
    return Path(env) if env else repo_root() / "build"


def trawlerctl():
    return build_dir() / "trawlerctl"


class OwnRedis:
    """A redis-server of the test's own, not the shared one:
    deploy/local/redis.sh in SVC_DIR. start(chk) is a check and sets url
    (redis://127.0.0.1:PORT/0) and port; stop() is safe to call always."""

    def __init__(self, svc_dir):
        self.svc_dir = str(svc_dir)
        self.script = str(repo_root() / "deploy/local/redis.sh")
        self.url = self.port = None
        self.password = None    # set by the test after CONFIG SET requirepass

    def start(self, chk):
        r = subprocess.run(["bash", self.script, "start", self.svc_dir],
                           capture_output=True, text=True, timeout=120)
        if not chk.check(r.returncode == 0, "own redis-server started", r.stderr):
            return False
        self.url = r.stdout.strip().splitlines()[-1]
        self.port = self.url.rsplit(":", 1)[1].split("/")[0]
        return True

    def stop(self):
        if self.url is None:
            return
        if self.password:   # redis.sh stops it with a password-less SHUTDOWN
            subprocess.run(["redis-cli", "-p", self.port, "-a", self.password,
                            "--no-auth-warning", "CONFIG", "SET", "requirepass", ""],
                           capture_output=True, timeout=30)
        subprocess.run(["bash", self.script, "stop", self.svc_dir],
                       capture_output=True, timeout=120)
        self.url = None


def crawl_env(cid, **extra):
    """os.environ plus crawl CID's own four topics (as run.sh names them)
    and EXTRA (TRAWLER_* variables)."""
    return dict(os.environ, TRAWLER_CRAWL_ID=cid,
                TRAWLER_FRONTIER_TOPIC=f"trawler.{cid}.frontier",
                TRAWLER_PAGES_TOPIC=f"trawler.{cid}.pages",
                TRAWLER_ITEMS_TOPIC=f"trawler.{cid}.items",
                TRAWLER_DLQ_TOPIC=f"trawler.{cid}.deadletter", **extra)


def ctl_init(chk, env):
    """trawlerctl init with ENV (a check); True when the topics exist."""
    r = subprocess.run([str(trawlerctl()), "init"], env=env, capture_output=True,
                       text=True, timeout=120)
    return chk.check(r.returncode == 0, "trawlerctl init", r.stdout + r.stderr)


class shared_services:
    """Context manager: Kafka and Redis for several run.sh calls. With
    TRAWLER_BROKERS and TRAWLER_REDIS set (test.sh exports them) it does
    nothing; otherwise it starts deploy/local/services.sh in a temp dir,
    exports both variables for this process (run.sh and trawlerctl inherit
    them) and stops the services at exit."""

    def __init__(self, chk=None):
        self.chk = chk
        self.dir = None
        self.saved = {}

    def __enter__(self):
        if os.environ.get("TRAWLER_BROKERS") and os.environ.get("TRAWLER_REDIS"):
            return self
        self.dir = make_tmpdir("trawler-svc-")
        if self.chk:
            self.chk.info(f"starting Kafka and Redis in {self.dir} "
                          "(TRAWLER_BROKERS/TRAWLER_REDIS not set)")
        r = subprocess.run(["bash", str(repo_root() / "deploy/local/services.sh"),
                            "start", str(self.dir)], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            self._stop()
            raise RuntimeError(f"services.sh start failed ({r.returncode}):\n"
                               f"{r.stdout}{r.stderr}")
        for line in (self.dir / "env").read_text().splitlines():
            m = re.match(r"\s*export\s+(TRAWLER_\w+)=(\S+)", line)
            if m:
                self.saved[m.group(1)] = os.environ.get(m.group(1))
                os.environ[m.group(1)] = m.group(2).strip("'\"")
        return self

    def _stop(self):
        subprocess.run(["bash", str(repo_root() / "deploy/local/services.sh"),
                        "stop", str(self.dir)], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __exit__(self, *exc):
        if self.dir is None:
            return
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._stop()


def kafka_messages(brokers, topic):
    """Every message value of `topic` from the beginning, read by kcat (a
    client independent of the workers): 4-byte big-endian length framing."""
    r = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-f", "%R%s"], capture_output=True, timeout=60)
    data, out = r.stdout, []
    while len(data) >= 4:
        (n,) = struct.unpack(">i", data[:4])
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


def protoc_text(payload, message):
    """`payload` decoded by protoc against the published proto/trawler.proto
    as trawler.v1.`message`, in protobuf text format; ValueError if it does
    not decode."""
    proto = Path(repo_root()) / "proto"
    r = subprocess.run(["protoc", f"--decode=trawler.v1.{message}", f"-I{proto}",
                        str(proto / "trawler.proto")], input=payload,
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise ValueError(r.stderr.decode(errors="replace"))
    return r.stdout.decode(errors="replace")


def protoc_fields(text):
    """The top-level scalar fields of a protoc text dump: {name: value}."""
    return dict(re.findall(r'^(\w+): "?(.*?)"?$', text, re.M))


def ensure_debian_package(binary, package, timeout=300):
    """Path of `binary`, installing Debian's `package` when it is missing
    (as root only; apt-get update once if the first try fails). None when
    it cannot be had."""
    found = shutil.which(binary)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    for pre in (None, ["apt-get", "update", "-qq"]):
        try:
            if pre:
                subprocess.run(pre, env=env, capture_output=True, timeout=timeout)
            r = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return shutil.which(binary)
        if r.returncode == 0:
            break
    return shutil.which(binary)


def free_port(host):
    """A port free on `host` right now (bind to 0, close)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind((host, 0))
        return sk.getsockname()[1]


# Site files ----------------------------------------------------------------

def host_root(site_root, hostport):
    """Directory server.py serves for hostport ('127.0.0.2:8080')."""
    return Path(site_root) / sitecommon.host_dir_name(hostport)


def write_site_file(site_root, hostport, rel, data):
    """Write DIR/<host>_<port>/<rel> (str or bytes); returns the path."""
    path = host_root(site_root, hostport) / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def html_doc(title, links=(), body=""):
    """A small HTML page: <title>, then one <a href> per link."""
    from html import escape
    items = "".join(f'<li><a href="{escape(h)}">{escape(h)}</a></li>\n'
                    for h in links)
    return (f"<!DOCTYPE html>\n<html><head><title>{escape(title)}</title>"
            f"</head><body>\n<h1>{escape(title)}</h1>\n{body}<ul>\n{items}"
            f"</ul>\n</body></html>\n")


def write_linked_site(site_root, hostport, npages, title_prefix=None):
    """index.html links to p/1.html .. p/<npages-1>.html; each page links
    back to / and to the next page. Returns {url: title} of all npages
    pages (the index is http://hostport/)."""
    prefix = title_prefix or hostport
    n = npages - 1
    pages = {f"http://{hostport}/": f"{prefix} index"}
    write_site_file(site_root, hostport, "index.html",
                    html_doc(f"{prefix} index",
                             [f"/p/{i}.html" for i in range(1, n + 1)]))
    for i in range(1, n + 1):
        title = f"{prefix} page {i}"
        write_site_file(site_root, hostport, f"p/{i}.html",
                        html_doc(title, ["/", f"/p/{i % n + 1}.html"]))
        pages[f"http://{hostport}/p/{i}.html"] = title
    return pages


# Server-log analysis ---------------------------------------------------------

def by_host(log):
    """{host: [records sorted by t_start]}"""
    out = {}
    for r in log:
        out.setdefault(r["host"], []).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r["t_start"])
    return out


def fmt_req(r, t0=None):
    """'GET /p/1.html -> 200  [+1.234s .. +1.240s] conn 7' (times relative
    to t0 when given)."""
    base = t0 if t0 is not None else 0.0
    extra = " STALLED" if r.get("stalled") else ""
    extra += f" ({r['error']})" if r.get("error") else ""
    return (f"{r['method']} {r['path']} -> {r['status']}{extra}  "
            f"[+{r['t_start'] - base:.3f}s .. +{r['t_end'] - base:.3f}s] "
            f"conn {r['conn']}")


def start_gaps(recs):
    """[(gap seconds, earlier record, later record)] between consecutive
    request starts (recs sorted by t_start)."""
    return [(b["t_start"] - a["t_start"], a, b) for a, b in zip(recs, recs[1:])]


def max_concurrency(intervals, eps=0.005):
    """intervals: [(start, end, payload)]. -> (max number overlapping at
    one instant, the payloads overlapping at the first instant it is
    reached). An interval counts on [start, end - eps): the server writes
    t_end after the last byte, so a client may start its next request a
    hair before the server's t_end; eps absorbs that."""
    events, instant = [], set()
    for i, (s, e, p) in enumerate(intervals):
        events.append((s, 1, i))
        if e - eps > s:
            events.append((e - eps, -1, i))
        else:                    # shorter than eps: counts at its start only
            instant.add(i)
    events.sort(key=lambda ev: (ev[0], ev[1]))   # ends before starts at a tie
    best, witness, active = 0, [], {}
    for t, d, i in events:
        if d > 0:
            active[i] = intervals[i][2]
            if len(active) > best:
                best, witness = len(active), list(active.values())
            if i in instant:
                del active[i]
        else:
            active.pop(i, None)
    return best, witness


def request_concurrency(recs, eps=0.02):
    """Max requests in progress at once among server-log records (one
    host). t_start is the kernel's arrival time, exact; t_end is taken by
    the server thread after its last write and can lag by a few ms when the
    thread waits for the GIL. So: a request's end is clamped to the start of
    the next request on the same connection (HTTP/1.1 without pipelining is
    sequential per connection), and eps (20 ms) absorbs the lag across
    connections - far below the slow responses the concurrency checks use."""
    by_conn = {}
    for r in recs:
        by_conn.setdefault((r["host"], r["conn"]), []).append(r)
    end = {}
    for rs in by_conn.values():
        rs.sort(key=lambda r: r["t_start"])
        for a, b in zip(rs, rs[1:] + [None]):
            end[id(a)] = a["t_end"] if b is None else min(a["t_end"], b["t_start"])
    return max_concurrency([(r["t_start"], end[id(r)], r) for r in recs], eps)


# pages.jsonl look-ups --------------------------------------------------------

def records_for(records, url):
    """pages.jsonl records whose url or requested_url is `url`."""
    return [r for r in records if url in (r.get("url"), r.get("requested_url"))]


def short_record(rec, keys=("url", "requested_url", "status", "error",
                            "error_message", "content_type", "title", "bytes",
                            "truncated", "partial", "method", "attempts",
                            "redirects", "http_version")):
    return json.dumps({k: rec[k] for k in keys if k in rec}, ensure_ascii=False)


_MISSING = object()


class AbsentOr:
    """check_record expectation: the field is absent, or equals value."""

    def __init__(self, value):
        self.value = value


def check_record(chk, name, records, url, want, by="any"):
    """Exactly one pages.jsonl record for `url` (by 'url', 'requested_url'
    or 'any' of both), with every field in `want` equal to its value
    (lib.ABSENT = field absent or false; lib.AbsentOr(v) = absent or v;
    a callable = predicate
    on the value, its __doc__ or name used in the message). Returns the
    record or None."""
    if by == "any":
        recs = records_for(records, url)
    else:
        recs = [r for r in records if r.get(by) == url]
    if len(recs) != 1:
        host = url.split("/")[2] if "//" in url else ""
        same_host = [short_record(r) for r in records
                     if host and host in (r.get("url") or "") + (r.get("requested_url") or "")]
        chk.check(False, name,
                  f"expected exactly 1 record for {url} in pages.jsonl, "
                  f"found {len(recs)}:\n" + show_list(short_record(r) for r in recs)
                  + f"\nrecords of that host ({len(same_host)}):\n"
                  + show_list(same_host, 15))
        return None
    rec = recs[0]
    bad = []
    for k, v in want.items():
        got = rec.get(k, _MISSING)
        if v is _MISSING:
            ok = got is _MISSING or got is False or got is None
            exp = "absent (or false)"
        elif isinstance(v, AbsentOr):
            ok = got is _MISSING or (got == v.value and type(got) is type(v.value))
            exp = f"{json.dumps(v.value)} or absent"
        elif callable(v):
            ok = got is not _MISSING and bool(v(got))
            exp = (v.__doc__ or getattr(v, "__name__", "predicate")).strip()
        else:
            ok = got == v and type(got) is type(v)
            exp = json.dumps(v)
        if not ok:
            bad.append(f"{k}: expected {exp}, got "
                       f"{'(absent)' if got is _MISSING else json.dumps(got)}")
    chk.check(not bad, name, "\n".join(bad) + f"\nrecord: {short_record(rec)}")
    return rec


ABSENT = _MISSING


def requests_to(log, host, path):
    """Server-log records for exactly this host and path (with query)."""
    return sorted((r for r in log if r["host"] == host and r["path"] == path),
                  key=lambda r: r["t_start"])


# Background run --------------------------------------------------------------

class run_trawler_bg:
    """run_trawler() in a thread: `with run_trawler_bg(args, ...) as bg:`
    lets the test act while the crawl runs; bg.result after bg.join()
    (the with-block joins at exit)."""

    def __init__(self, args, timeout, **kw):
        self.result = None
        self.error = None

        def target():
            try:
                self.result = run_trawler(args, timeout, **kw)
            except Exception as e:  # reported by join()
                self.error = e
        self.thread = threading.Thread(target=target, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def running(self):
        return self.thread.is_alive()

    def join(self):
        self.thread.join()
        if self.error:
            raise self.error
        return self.result

    def __exit__(self, *exc):
        self.thread.join()


def wait_until(pred, timeout, interval=0.05):
    """Poll pred() until true (returns True) or timeout (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())
