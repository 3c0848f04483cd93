"""Chaos test (issue 5): a crawl survives kill -9 of any worker, a broker
restart and a Redis restart, loses nothing and knows when it is done.

Seeded and reproducible: TRAWLER_CHAOS_SEED (default 1) fixes the generated
site and the whole chaos schedule (which worker is killed when, when the
broker and Redis restart); the schedule is printed before it runs.

- Starts its OWN Kafka and Redis (deploy/local/services.sh in a temp dir),
  since it restarts them; the shared services test.sh exports are not used
  (TRAWLER_BROKERS/TRAWLER_REDIS are overridden for every child).
- A generated site (tests/site/gen_site.py) on three hosts 127.0.0.2-4,
  one of them slowed down (server.py --slow), topics with 6 partitions,
  3 producers and 3 consumers started directly (build/trawler-*), lease
  20 s so stuck work is re-enqueued within the test. The consumers run in
  transactional mode with the items sink on (--transactional --items), each
  slot with a stable --transactional-id, so a replacement aborts its killed
  predecessor's open transaction at once.
- The driver SIGKILLs a random worker every 2-4 s and starts a replacement
  of the same role; once restarts the broker (kafka.sh stop, start: same
  data and ports), once Redis (redis.sh stop, start: AOF keeps the counts).
  A worker that exits on its own is a failure (it is replaced so that the
  crawl can go on, and reported with its log).
- Chaos stops once most of the crawl is done (or after a bounded time);
  then `trawlerctl wait --wait-timeout 240`.

Checks: completion detected (trawlerctl wait exits 0) and never early
(pending never read 0 while done < reachable); pages.jsonl URL set ==
the manifest's reachable set (duplicates allowed and counted, also
duplicate fetches in the server log); the items topic read with
read_committed (trawlerctl dump-items) holds no page twice and its URL set
== the reachable set (the items of aborted transactions, which a
read_uncommitted reader sees, are counted); Redis admitted == done ==
len(reachable), pending == 0; every surviving worker exits 0 within 30 s
of SIGTERM; no worker exited on its own.

Environment:
  TRAWLER_CHAOS_SEED=N     seed (default 1)
  TRAWLER_CHAOS_SOAK=1     longer soak: more pages, chaos for longer
  TRAWLER_CHAOS_PAGES, TRAWLER_CHAOS_SECONDS, TRAWLER_CHAOS_SLOW
                           override the site size, the longest chaos phase
                           and the slow host's per-response delay
  for diagnosis only (the defaults are what the issue asks for):
  TRAWLER_CHAOS_KILLS=0    no kills, restarts only
  TRAWLER_CHAOS_RESTARTS=broker|redis|""   restart only these (default both)
  TRAWLER_CHAOS_LEASE=S    lease other than 20 s (e.g. 1800: does the crawl
                           complete without the reaper's help?)
  TRAWLER_CHAOS_TXN=0      consumers without --transactional (the items
                           topic check is then skipped)
  TRAWLER_KEEP_TMP=1       keep the temp dir (logs, pages.jsonl, services)
"""

import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

ROOT = lib.repo_root()
LOCAL = ROOT / "deploy" / "local"

SEED = int(os.environ.get("TRAWLER_CHAOS_SEED") or "1")
SOAK = (os.environ.get("TRAWLER_CHAOS_SOAK") or "0") not in ("", "0")

# small (CI) and soak sizes
PAGES = int(os.environ.get("TRAWLER_CHAOS_PAGES") or (3000 if SOAK else 600))
CHAOS_MAX = float(os.environ.get("TRAWLER_CHAOS_SECONDS") or (180 if SOAK else 40))
# per-response delay of one host: with 2 connections its ~PAGES/3 pages
# take PAGES/3 * SLOW / 2 seconds, long enough for both restarts to land
# while pages are being fetched (and short of the 20 s lease without chaos)
SLOW = float(os.environ.get("TRAWLER_CHAOS_SLOW") or (0.06 if SOAK else 0.15))
KILL_GAP = (2.0, 4.0)            # seconds between two kills
KILLS = (os.environ.get("TRAWLER_CHAOS_KILLS") or "1") != "0"   # 0: restarts only
LEASE = int(os.environ.get("TRAWLER_CHAOS_LEASE") or 20)   # TRAWLER_LEASE for the workers
TXN = (os.environ.get("TRAWLER_CHAOS_TXN") or "1") != "0"   # consumers --transactional
# what to restart (diagnosis: e.g. "broker" alone, or "" for kills only)
RESTARTS = [x for x in (os.environ.get("TRAWLER_CHAOS_RESTARTS", "broker,redis")
                        .replace(" ", "").split(",")) if x]
STOP_TIMEOUT = 5                 # --stop-timeout
WAIT_TIMEOUT = 240               # trawlerctl wait --wait-timeout
TERM_GRACE = 30                  # a SIGTERMed worker must exit 0 within this
HOSTS = ["127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"]
SLOW_HOST = HOSTS[2]
ROLES = ("producer", "consumer")
PER_ROLE = 3

# worker options that must not leak in from the caller's environment
KEEP_ENV = {"TRAWLER_BUILD_DIR", "TRAWLER_REPO_ROOT", "TRAWLER_CACHE"}


def is_robots(url):
    return isinstance(url, str) and urlsplit(url).path == "/robots.txt"


class Clock:
    def __init__(self):
        self.t0 = time.time()

    def now(self):
        return time.time() - self.t0


class Events:
    """Timestamped chaos log, printed as it happens."""

    def __init__(self, clock):
        self.clock = clock
        self.lines = []
        self.lock = threading.Lock()

    def add(self, msg):
        now = time.time()
        utc = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        line = f"[chaos +{now - self.clock.t0:6.1f}s {utc}] {msg}"
        with self.lock:
            self.lines.append(line)
        print(line, flush=True)


class Worker:
    def __init__(self, role, slot, wid, proc, log, started):
        self.role, self.slot, self.wid = role, slot, wid
        self.proc, self.log, self.started = proc, log, started
        self.killed = False       # SIGKILLed by the driver (expected death)
        self.termed = False       # SIGTERMed at the end
        self.ended = None         # test-clock time it was seen gone

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=25):
        """Last n lines of the worker's log, librdkafka's connection noise
        left out (counted)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        own = [ln for ln in lines if "msg=librdkafka" not in ln]
        note = f"({len(lines) - len(own)} librdkafka lines left out)\n" \
            if len(own) < len(lines) else ""
        return note + "\n".join(own[-n:])


class Fleet:
    """The workers: PER_ROLE slots per role, each with a live process."""

    def __init__(self, build, env, logdir, outdir, clock, events):
        self.build, self.env, self.logdir, self.outdir = build, env, logdir, outdir
        self.clock, self.events = clock, events
        self.slots = {}                         # (role, slot) -> Worker
        self.all = []                           # every Worker ever started
        self.serial = collections.Counter()
        self.unexpected = []                    # (Worker, rc, t, context)
        self.lock = threading.Lock()

    def start(self, role, slot):
        self.serial[role] += 1
        wid = f"{role}-{self.serial[role]}"
        log = self.logdir / f"{wid}.log"
        cmd = [str(self.build / f"trawler-{role}"), "--worker-id", wid,
               "--stop-timeout", str(STOP_TIMEOUT)]
        if role == "producer":
            cmd += ["--allow-private", "--delay", "0", "--host-connections", "2"]
        else:
            cmd += ["--out", str(self.outdir)]
            if TXN:
                # stable per slot: the replacement fences the killed one's
                # open transaction instead of waiting for its timeout
                cmd += ["--transactional", "--items",
                        "--transactional-id", f"chaos-consumer-{slot}"]
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=fh, stderr=subprocess.STDOUT)
        w = Worker(role, slot, wid, proc, log, self.clock.now())
        self.slots[(role, slot)] = w
        self.all.append(w)
        return w

    def start_all(self):
        for role in ROLES:
            for slot in range(PER_ROLE):
                self.start(role, slot)

    def kill(self, role, slot):
        with self.lock:
            w = self.slots[(role, slot)]
            if w.alive():
                w.killed = True
                w.proc.send_signal(signal.SIGKILL)
                w.proc.wait()
                w.ended = self.clock.now()
            nw = self.start(role, slot)
        self.events.add(f"SIGKILL {w.wid} (pid {w.proc.pid}, up "
                        f"{w.ended - w.started:.1f}s) -> started {nw.wid} "
                        f"(pid {nw.proc.pid})")
        return w, nw

    def check_exits(self, context):
        """Workers that exited without being killed: record, replace."""
        with self.lock:
            for key, w in list(self.slots.items()):
                if w.killed or w.termed or w.alive():
                    continue
                w.ended = self.clock.now()
                rc = w.proc.returncode
                self.unexpected.append((w, rc, w.ended, context()))
                nw = self.start(*key)
                self.events.add(f"UNEXPECTED EXIT of {w.wid} (pid {w.proc.pid}) "
                                f"status {rc} [{context()}] -> started {nw.wid}")

    def live(self):
        return [w for w in self.slots.values() if w.alive()]

    def kill_everything(self):
        for w in self.all:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()


class StatusPoller(threading.Thread):
    """trawlerctl status every 0.3 s: (t, admitted, pending, done, failed)."""

    def __init__(self, ctl, env, clock):
        super().__init__(daemon=True)
        self.ctl, self.env, self.clock = ctl, env, clock
        self.samples, self.errors = [], 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            s = read_status(self.ctl, self.env)
            if s is None:
                self.errors += 1
            else:
                self.samples.append((self.clock.now(),) + s)
            self.stop_ev.wait(0.3)

    def latest(self):
        return self.samples[-1] if self.samples else None


def read_status(ctl, env):
    try:
        r = subprocess.run([str(ctl), "status"], env=env, capture_output=True,
                           text=True, timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        return None
    if r.returncode != 0:
        return None
    f = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
    try:
        return tuple(int(f[k]) for k in ("admitted", "pending", "done", "failed"))
    except (KeyError, ValueError):
        return None


def services(cmd, svc, env, script="services.sh", timeout=300):
    t0 = time.time()
    r = subprocess.run(["bash", str(LOCAL / script), cmd, str(svc)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


class Restart(threading.Thread):
    """kafka.sh / redis.sh stop DIR, then start DIR (same data and ports)."""

    def __init__(self, what, script, svc, env, events, status_at_start):
        super().__init__(daemon=True)
        self.what, self.script, self.svc, self.env = what, script, svc, env
        self.events = events
        self.status_at_start = status_at_start
        self.ok = None
        self.detail = ""
        self.down_s = None
        self.t_start = events.clock.now()
        self.t_end = None

    def run(self):
        try:
            self.events.add(f"restart {self.what}: stopping")
            r1, d1 = services("stop", self.svc, self.env, self.script)
            t_down = time.time()
            self.events.add(f"restart {self.what}: stopped in {d1:.1f}s "
                            f"(status {r1.returncode}), starting again")
            r2, d2 = services("start", self.svc, self.env, self.script)
            self.down_s = time.time() - t_down
            self.ok = r1.returncode == 0 and r2.returncode == 0
            self.detail = (f"stop: status {r1.returncode}\n{r1.stderr}\n"
                           f"start: status {r2.returncode}\n{r2.stdout}{r2.stderr}")
            self.events.add(f"restart {self.what}: {'up again' if self.ok else 'FAILED'}"
                            f" after {d2:.1f}s (down {self.down_s:.1f}s) "
                            f"{r2.stdout.strip()}")
        except Exception:
            self.ok = False
            self.detail = traceback.format_exc()
        self.t_end = self.events.clock.now()


def make_schedule(rng, chaos_max):
    """Everything random, drawn up front in a fixed order: kill times and
    targets for the longest possible chaos phase, restart times."""
    broker_at = rng.uniform(3, 6) * max(1, chaos_max / 40)
    redis_gap = rng.uniform(2, 4) * max(1, chaos_max / 40)  # after the broker is back
    kills, t = [], 0.0
    while t < chaos_max + 60:
        t += rng.uniform(*KILL_GAP)
        kills.append((t, rng.choice(ROLES), rng.randrange(PER_ROLE)))
    return broker_at, redis_gap, kills


def worker_env(svc_env_vars, cid):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRAWLER_") or k in KEEP_ENV}
    env.update(svc_env_vars)
    env.update({
        "TRAWLER_CRAWL_ID": cid,
        "TRAWLER_LEASE": str(LEASE),
        "TRAWLER_PARTITIONS": "6",
        # a replacement started while the broker is down waits for it
        "TRAWLER_CONNECT_CHECK_TIMEOUT": "60",
    })
    return env


def parse_env_file(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\s*export\s+(TRAWLER_\w+)=(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def redis_pending_entries(svc, cid, limit=200):
    """URLs still pending in Redis (evidence when the counts are off)."""
    try:
        port = (Path(svc) / "redis" / "port").read_text().strip()
        base = ["redis-cli", "-h", "127.0.0.1", "-p", port]
        keys = subprocess.run(base + ["--scan", "--pattern", f"tr:{{{cid}}}:p:*"],
                              capture_output=True, text=True, timeout=30).stdout.split()
        out = []
        for k in keys:
            r = subprocess.run(base + ["hgetall", k], capture_output=True,
                               text=True, timeout=30).stdout.splitlines()
            out += [f"{k} {r[i]} -> {r[i + 1]}" for i in range(0, len(r) - 1, 2)]
            if len(out) >= limit:
                break
        meta = subprocess.run(base + ["hgetall", f"tr:{{{cid}}}:meta"],
                              capture_output=True, text=True, timeout=30).stdout
        return out, " ".join(meta.split())
    except Exception as e:  # diagnostics only
        return [f"(could not read Redis: {e})"], ""


def dump_items(ctl, env, cid, committed=True):
    """URLs of crawl cid's items in the items topic, as a read_committed (or
    read_uncommitted) reader sees them; (urls, error text or None)."""
    args = [str(ctl), "dump-items"]
    if not committed:
        args.append("--kafka.isolation.level=read_uncommitted")
    try:
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return [], "trawlerctl dump-items timed out"
    urls = []
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("crawl_id") == cid:
            urls.append(rec.get("url"))
    return urls, None if r.returncode == 0 else f"status {r.returncode}: {r.stderr}"


def grep_logs(workers, pattern):
    rx = re.compile(pattern)
    hits = []
    for w in workers:
        try:
            for line in w.log.read_text(errors="replace").splitlines():
                if rx.search(line):
                    hits.append((w.wid, line))
        except OSError:
            pass
    return hits


def main():
    chk = lib.Checker("integration.test_chaos")
    clock = Clock()
    events = Events(clock)
    tmp = lib.make_tmpdir("trawler-chaos-")
    svc = tmp / "svc"
    logs = tmp / "logs"
    outdir = tmp / "out"
    logs.mkdir()
    build = lib.build_dir()
    ctl = build / "trawlerctl"
    svc_env = {k: v for k, v in os.environ.items()
               if k not in ("TRAWLER_BROKERS", "TRAWLER_REDIS")}
    rng = random.Random(SEED)
    broker_at, redis_gap, kills = make_schedule(rng, CHAOS_MAX)

    chk.info(f"seed {SEED} (reproduce: TRAWLER_CHAOS_SEED={SEED}"
             f"{' TRAWLER_CHAOS_SOAK=1' if SOAK else ''}); "
             f"{'soak' if SOAK else 'small'} run: {PAGES} pages, chaos up to "
             f"{CHAOS_MAX:.0f}s, slow host delay {SLOW}s; temp dir {tmp}")
    chk.info(f"schedule: broker restart at +{broker_at:.1f}s of chaos, Redis "
             f"{redis_gap:.1f}s after the broker is back; kills: "
             + ", ".join(f"+{t:.1f}s {r}[{s}]" for t, r, s in kills
                         if t <= CHAOS_MAX))
    chk.info("consumers: " + ("--transactional --items (items topic checked "
                              "with read_committed)" if TXN else
                              "not transactional (TRAWLER_CHAOS_TXN=0): items not checked"))

    server = None
    fleet = None
    poller = None
    svc_started = False
    restarts = []
    wait_res = None
    ok = False
    try:
        # a private copy of the binaries: a rebuild of the build dir during
        # the test must not swap the code under the replacement workers
        bindir = tmp / "bin"
        bindir.mkdir()
        for exe in ("trawler-producer", "trawler-consumer", "trawlerctl"):
            if not (build / exe).is_file():
                raise RuntimeError(f"missing {build / exe} (build first; "
                                   "TRAWLER_BUILD_DIR names the build)")
            shutil.copy2(build / exe, bindir / exe)
        chk.info(f"binaries from {build} (copied to {bindir})")
        build, ctl = bindir, bindir / "trawlerctl"
        # 1. own Kafka + Redis
        r, d = services("start", svc, svc_env)
        svc_started = True
        if not chk.check(r.returncode == 0, f"own Kafka and Redis started ({d:.1f}s)",
                         r.stdout + r.stderr):
            return chk.summary()
        svc_vars = parse_env_file(svc / "env")
        chk.info(f"services: {svc_vars}")
        cid = f"chaos-{SEED}-{os.getpid()}"
        env = worker_env(svc_vars, cid)

        # 2. site
        server = lib.SiteServer(tmp / "site", HOSTS, tmp / "requests.jsonl",
                                workdir=tmp, extra_args=["--slow", f"{SLOW_HOST}={SLOW}"])
        hps = server.start()
        m = lib.generate_site(tmp / "site", hps, PAGES, seed=SEED)
        expected = set(m["reachable"])
        N = len(expected)
        chk.info(f"site: {N} reachable URLs on {hps} ({hps[2]} delayed {SLOW}s "
                 "per response)")

        # 3. topics, workers, seeds
        r = subprocess.run([str(ctl), "init"], env=env, capture_output=True,
                           text=True, timeout=120)
        if not chk.check(r.returncode == 0, "trawlerctl init (6 partitions)",
                         r.stdout + r.stderr):
            return chk.summary()
        fleet = Fleet(build, env, logs, outdir, clock, events)
        fleet.start_all()
        lib.wait_until(lambda: all(
            "partitions assigned" in w.log.read_text(errors="replace")
            for w in fleet.live()), 30, 0.1)
        r = subprocess.run([str(ctl), "seed", "--allow-private"] + m["seeds"],
                           env=env, capture_output=True, text=True, timeout=120)
        if not chk.check(r.returncode == 0, "seeded the host roots",
                         r.stdout + r.stderr):
            return chk.summary()
        t_seed = clock.now()
        events.add(f"seeded {len(m['seeds'])} roots, crawl {cid}")
        poller = StatusPoller(ctl, env, clock)
        poller.start()

        # 4. chaos
        def context():
            s = poller.latest()
            rs = ", ".join(f"{x.what} restart {'running' if x.t_end is None else f'ended +{x.t_end:.1f}s'}"
                           for x in restarts)
            age = f" (read {clock.now() - s[0]:.1f}s ago)" if s and clock.now() - s[0] > 1.5 else ""
            return (f"+{clock.now():.1f}s; "
                    + (f"admitted={s[1]} pending={s[2]} done={s[3]}{age}" if s else "no status")
                    + (f"; {rs}" if rs else ""))

        t_chaos = clock.now()
        ki = 0
        broker = redis = None
        shown, last_show = None, -10.0
        while True:
            now = clock.now() - t_chaos
            fleet.check_exits(context)
            s = poller.latest()
            # progress: on a change (at most once a second), else every 10 s
            if now >= last_show + (1.0 if s and s[1:] != shown else 10.0):
                shown, last_show = (s[1:] if s else None), now
                events.add(f"status {context()}")
            while KILLS and ki < len(kills) and kills[ki][0] <= now:
                _, role, slot = kills[ki]
                fleet.kill(role, slot)
                ki += 1
            s = poller.latest()
            if broker is None and now >= broker_at:
                broker = Restart("broker", "kafka.sh", svc, svc_env, events, s)
                if "broker" in RESTARTS:
                    restarts.append(broker)
                    broker.start()
                else:
                    broker.t_end = clock.now()
            if broker is not None and broker.t_end is not None and redis is None \
                    and clock.now() >= broker.t_end + redis_gap:
                redis = Restart("Redis", "redis.sh", svc, svc_env, events, s)
                if "redis" in RESTARTS:
                    restarts.append(redis)
                    redis.start()
                else:
                    redis.t_end = clock.now()
            restarts_done = redis is not None and redis.t_end is not None
            mostly_done = s is not None and s[1] >= 0.8 * N and \
                s[2] <= max(10, N // 20)
            if restarts_done and (mostly_done or now >= CHAOS_MAX):
                break
            if now >= CHAOS_MAX + 120:   # restarts hanging: give up on them
                events.add("restarts did not finish in time")
                break
            time.sleep(0.1)
        s = poller.latest()
        t_chaos_end = clock.now()
        events.add(f"chaos over after {t_chaos_end - t_chaos:.1f}s: {ki} kills; "
                   + (f"admitted={s[1]} pending={s[2]} done={s[3]}" if s else "no status"))

        # 5. completion
        wait = subprocess.Popen([str(ctl), "wait", "--wait-timeout", str(WAIT_TIMEOUT)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        out_box = {}
        reader = threading.Thread(target=lambda: out_box.update(
            zip(("out", "err"), wait.communicate())), daemon=True)
        reader.start()
        while wait.poll() is None and clock.now() - t_chaos_end < WAIT_TIMEOUT + 30:
            fleet.check_exits(context)
            time.sleep(0.2)
        if wait.poll() is None:
            wait.kill()
        reader.join(10)
        wait_res = (wait.returncode, out_box.get("out", ""), out_box.get("err", ""))
        t_done = clock.now()
        events.add(f"trawlerctl wait exited {wait_res[0]} after "
                   f"{t_done - t_chaos_end:.1f}s")
        fleet.check_exits(context)
        time.sleep(1.0)
        poller.stop_ev.set()
        poller.join(15)
        final = read_status(ctl, env)

        # 6. graceful stop of every surviving worker
        survivors = fleet.live()
        t_term = time.time()
        for w in survivors:
            w.termed = True
            w.proc.send_signal(signal.SIGTERM)
        term = []
        for w in survivors:
            try:
                rc = w.proc.wait(max(0.1, TERM_GRACE - (time.time() - t_term)))
            except subprocess.TimeoutExpired:
                rc = None
            term.append((w, rc, time.time() - t_term))
        fleet.kill_everything()
        server_rc = server.stop()
        log = server.read_log()

        # ---------------------------------------------------------------
        # checks
        for x in restarts:
            chk.check(x.ok, f"{x.what} restarted on the same data and ports "
                      f"(down {x.down_s or 0:.1f}s)", x.detail)
            st = x.status_at_start
            chk.check(st is not None and st[2] > 0,
                      f"{x.what} restarted while work was pending",
                      "status at restart: " + (f"admitted={st[1]} pending={st[2]} "
                                               f"done={st[3]}" if st else "none read"))
        chk.check(len(restarts) == len(RESTARTS), f"{' and '.join(RESTARTS) or 'nothing'} "
                  "restarted once each", [x.what for x in restarts])
        chk.check(wait_res[0] == 0, f"completion detected: trawlerctl wait exits 0 "
                  f"within {WAIT_TIMEOUT}s",
                  f"status {wait_res[0]}\nstdout (tail):\n{lib.tail(wait_res[1], 10)}"
                  f"\nstderr:\n{lib.tail(wait_res[2], 10)}\nlast status: "
                  f"{poller.latest()}")
        early = [x for x in poller.samples if x[1] > 0 and x[2] == 0 and x[3] < N]
        chk.check(not early, f"completion never early: pending never 0 while done < "
                  f"{N} ({len(poller.samples)} samples)",
                  lib.show_list(f"+{t:.1f}s admitted={a} pending={p} done={dn}"
                                for t, a, p, dn, _ in early[:10]))
        fa = final or (None,) * 4
        ok_counts = final is not None and fa[0] == N and fa[2] == N and fa[1] == 0
        detail = f"trawlerctl status: admitted={fa[0]} pending={fa[1]} done={fa[2]} " \
                 f"failed={fa[3]}; reachable {N}"
        if not ok_counts:
            pend, meta = redis_pending_entries(svc, cid)
            detail += f"\nmeta: {meta}\npending entries ({len(pend)}):\n" + \
                lib.show_list(pend, 40)
        chk.check(ok_counts, f"Redis counts: admitted == done == {N}, pending == 0",
                  detail)

        records, errors = lib.read_jsonl(outdir / "pages.jsonl") \
            if (outdir / "pages.jsonl").exists() else ([], ["pages.jsonl missing"])
        chk.check(not errors, "pages.jsonl: every line is a JSON object",
                  lib.show_list(errors))
        counts = collections.Counter(r.get("url") for r in records)
        got = {u for u in counts if not (is_robots(u) and u not in expected)}
        missing = sorted(expected - got)
        extra = sorted(got - expected, key=str)
        detail = ""
        if missing:
            fetched = collections.Counter(lib.log_url(x) for x in log)
            detail += f"MISSING from pages.jsonl ({len(missing)}):\n" + lib.show_list(
                f"{u} (server saw {fetched.get(u, 0)} requests)" for u in missing) + "\n"
        if extra:
            detail += f"UNEXPECTED in pages.jsonl ({len(extra)}):\n" + lib.show_list(extra)
        chk.check(not missing and not extra,
                  f"pages.jsonl URL set == reachable set ({N} expected, "
                  f"{len(got & expected)} found)", detail)
        items_line = "not checked (TRAWLER_CHAOS_TXN=0)"
        if TXN:
            items, ierr = dump_items(ctl, env, cid, committed=True)
            all_items, _ = dump_items(ctl, env, cid, committed=False)
            icounts = collections.Counter(items)
            twice = sorted((u for u, n in icounts.items() if n > 1), key=str)
            igot = {u for u in icounts if not (is_robots(u) and u not in expected)}
            chk.check(ierr is None, "items topic read to its end with read_committed "
                      "(trawlerctl dump-items)", ierr or "")
            chk.check(not twice, f"no page twice in the transactional items topic "
                      f"(read_committed, {len(items)} items)",
                      lib.show_list(f"{u} x{icounts[u]}" for u in twice))
            chk.check(igot == expected, f"items topic URL set == reachable set ({N} expected, "
                      f"{len(igot & expected)} found)",
                      lib.show_list(sorted(igot ^ expected, key=str)))
            items_line = (f"{len(items)} read_committed, {len(all_items) - len(items)} more "
                          "in aborted transactions (read_uncommitted)")
        dup_lines = sum(n - 1 for u, n in counts.items() if n > 1 and u in expected)
        dup_urls = sum(1 for u, n in counts.items() if n > 1 and u in expected)

        fetches = collections.Counter(lib.log_url(x) for x in log
                                      if x["method"] in ("GET", "HEAD")
                                      and not is_robots(lib.log_url(x)))
        dup_fetches = sum(n - 1 for u, n in fetches.items() if n > 1)
        dup_fetch_urls = sum(1 for n in fetches.values() if n > 1)

        bad_term = [f"{w.wid} (pid {w.proc.pid}): "
                    + ("still running after 30s" if rc is None else f"exit {rc}")
                    + f"\n{w.log_tail(15)}"
                    for w, rc, _ in term if rc != 0]
        chk.check(survivors and not bad_term,
                  f"every surviving worker ({len(survivors)}) exits 0 within "
                  f"{TERM_GRACE}s of SIGTERM "
                  f"(slowest {max((t for _, _, t in term), default=0):.1f}s)",
                  "\n".join(bad_term))
        bad_exit = [f"{w.wid} (pid {w.proc.pid}) exited with status {rc} at "
                    f"+{t:.1f}s, not killed by the driver [{ctxt}]\n"
                    f"--- {w.log} (tail) ---\n{w.log_tail(25)}"
                    for w, rc, t, ctxt in fleet.unexpected]
        chk.check(not bad_exit, "no worker exited on its own during the crawl "
                  "(broker and Redis restarts survived)", "\n".join(bad_exit))
        chk.check(server_rc == 0, "site server stopped cleanly", f"status {server_rc}")

        # summary
        reaped = sum(int(m_.group(1)) for _, line in grep_logs(
            fleet.all, r"re-enqueued URLs whose lease ran out") for m_ in
            [re.search(r"count=(\d+)", line)] if m_)
        redis_lost = len(grep_logs(fleet.all, r"redis connection lost"))
        kafka_down = len(grep_logs(fleet.all, r"(?i)brokers are down|all broker"))
        kills_by = collections.Counter(w.role for w in fleet.all if w.killed)
        print("=" * 72)
        print(f"chaos summary (seed {SEED}{', soak' if SOAK else ''}):")
        print(f"  site           {N} reachable URLs, {len(m['seeds'])} seeds")
        print(f"  kills          {sum(kills_by.values())} SIGKILLs "
              f"({kills_by['producer']} producers, {kills_by['consumer']} consumers); "
              f"{len(fleet.all)} workers started in all")
        for x in restarts:
            st = x.status_at_start
            print(f"  restart        {x.what} at +{x.t_start - t_chaos:.1f}s of chaos, "
                  f"down {x.down_s or 0:.1f}s, before it: "
                  + (f"admitted={st[1]} pending={st[2]} done={st[3]}" if st else "no status"))
        print(f"  unexpected     {len(fleet.unexpected)} worker exit(s) not caused "
              "by the driver")
        print(f"  duplicates     {dup_lines} extra pages.jsonl lines ({dup_urls} URLs "
              f"more than once) of {len(records)} lines")
        print(f"  items topic    {items_line}")
        print(f"  dup fetches    {dup_fetches} extra requests ({dup_fetch_urls} URLs "
              f"fetched more than once) of {sum(fetches.values())} requests")
        print(f"  lease reaper   {reaped} URLs re-enqueued; redis reconnects logged "
              f"{redis_lost}; broker-down log lines {kafka_down}")
        print(f"  final status   admitted={fa[0]} pending={fa[1]} done={fa[2]} "
              f"failed={fa[3]}")
        print(f"  wall time      {t_done - t_seed:.1f}s crawl (chaos "
              f"{t_chaos_end - t_chaos:.1f}s, then wait {t_done - t_chaos_end:.1f}s); "
              f"{clock.now():.1f}s test")
        ok = not chk.failed()
    except Exception:
        chk.check(False, "test ran to the end", traceback.format_exc())
    finally:
        if poller is not None:
            poller.stop_ev.set()
        if fleet is not None:
            fleet.kill_everything()
        if server is not None:
            server.stop()
        for x in restarts:
            x.join(120)
        if svc_started:
            r, _ = services("stop", svc, svc_env)
            if r.returncode != 0:
                print(f"[warn] services.sh stop: {r.stderr}", flush=True)
        if not ok:
            print(f"[info] worker logs in {logs}", flush=True)
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
