"""Helpers for the integration tests (plain scripts, stdlib only).

- repo_root(), SITE_DIR
- SiteServer: tests/site/server.py on fresh ports (port 0), in a temp dir
- generate_site(): tests/site/gen_site.py, returns the manifest
- run_trawler(): ./run.sh from the repo root with a timeout, output
  captured (and optionally echoed), every process it spawns tracked through
  an environment marker so the test can tell what *this* run started
- Checker: named checks, a summary, an exit status
"""

import json
import os
import re
import shutil
import signal
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

    def __init__(self, root, listens, log_path, workdir=None):
        self.root = Path(root)
        self.listens = list(listens)
        self.log_path = Path(log_path)
        self.workdir = Path(workdir) if workdir else self.log_path.parent
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
