"""deploy/local/kafka.sh starts a broker even when its exec is slow.

kafka.sh forks a subshell that execs java and then polls the child. Until
the exec, the child's command line is still the script's; a poll that asked
"is this our broker?" by command line during that window reported "broker
exited during start-up" for a broker that came up a moment later, orphaned
(CI hit this once under load, in test_chaos's broker restart).

This test makes that window wide on purpose: a `java` shim first on PATH
re-executes itself without arguments (so its command line is not the
broker's), sleeps 0.5 s, then execs the real java with the original
arguments. Only the broker's own launch (`kafka.Kafka`) is delayed.

Checks, for a first start and for a restart on the same data:
- kafka.sh start exits 0 and prints the broker address (the same both times);
- the broker answers a metadata request (kcat -L);
- kafka.sh status names it;
- exactly one broker process runs with this directory's config;
and kafka.sh stop leaves no broker process behind.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402

SHIM = """#!/usr/bin/env bash
# java shim (test_kafka_script): delay the broker's exec in a process whose
# command line is not the broker's.
if [ -z "${SHIM_ARGS:-}" ]; then
  n=$#
  if [ "$n" -ge 2 ] && [ "${@:n-1:1}" = kafka.Kafka ]; then
    f=$(mktemp)
    printf '%s\\0' "$@" >"$f"
    SHIM_ARGS=$f exec "$0"
  fi
  exec REAL_JAVA "$@"
fi
sleep 0.5
mapfile -d '' -t args <"$SHIM_ARGS"
rm -f "$SHIM_ARGS"
unset SHIM_ARGS
exec REAL_JAVA "${args[@]}"
"""


def broker_processes(config, shim_dir=None):
    """pids whose command line ends with `kafka.Kafka CONFIG` (and, with
    SHIM_DIR, the shims still sleeping before their exec)."""
    want = f"kafka.Kafka {config}"
    return sorted(pid for pid, p in lib.list_processes().items()
                  if p["cmdline"].endswith(want)
                  or (shim_dir and f"{shim_dir}/java" in p["cmdline"]))


def metadata_ok(addr):
    try:
        r = subprocess.run(["kcat", "-b", addr, "-L", "-m", "10"],
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return False, "kcat -L timed out"
    return r.returncode == 0 and "broker" in r.stdout, r.stderr


def main():
    chk = lib.Checker("integration.test_kafka_script")
    tmp = lib.make_tmpdir("trawler-kafkash-")
    kafka_sh = str(lib.repo_root() / "deploy/local/kafka.sh")
    svc = tmp / "svc"
    config = str(svc / "kafka" / "server.properties")
    ok = False
    real_java = shutil.which("java")
    try:
        if not chk.check(real_java, "java on PATH"):
            return chk.summary()
        lib.ensure_debian_package("kcat", "kcat")
        shim_dir = tmp / "shim"
        shim_dir.mkdir()
        shim = shim_dir / "java"
        shim.write_text(SHIM.replace("REAL_JAVA", real_java))
        shim.chmod(0o755)
        env = dict(os.environ, PATH=f"{shim_dir}:{os.environ['PATH']}")
        svc.mkdir()
        config = str(svc.resolve() / "kafka" / "server.properties")

        addrs = []
        for run in ("first start", "restart"):
            t0 = time.time()
            r = subprocess.run(["bash", kafka_sh, "start", str(svc)], env=env,
                               capture_output=True, text=True, timeout=240)
            addr = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
            if not chk.check(r.returncode == 0 and addr.startswith("127.0.0.1:"),
                             f"{run}: kafka.sh start exits 0 with a slow exec "
                             f"({time.time() - t0:.1f}s)", lib.tail(r.stderr)):
                break
            addrs.append(addr)
            good, detail = metadata_ok(addr)
            chk.check(good, f"{run}: the broker at {addr} answers a metadata request",
                      detail)
            s = subprocess.run(["bash", kafka_sh, "status", str(svc)], env=env,
                               capture_output=True, text=True, timeout=60)
            chk.check(s.returncode == 0 and s.stdout.strip() == addr,
                      f"{run}: kafka.sh status names the broker",
                      f"rc {s.returncode}, stdout {s.stdout!r}, stderr {s.stderr!r}")
            pids = broker_processes(config)
            chk.check(len(pids) == 1, f"{run}: exactly one broker process runs",
                      f"broker pids {pids}")
            r = subprocess.run(["bash", kafka_sh, "stop", str(svc)], env=env,
                               capture_output=True, text=True, timeout=120)
            chk.check(r.returncode == 0 and lib.wait_until(
                lambda: not broker_processes(config), 10),
                f"{run}: kafka.sh stop leaves no broker process",
                f"rc {r.returncode}; {r.stderr}; left {broker_processes(config)}")
        if len(addrs) == 2:
            chk.check(addrs[0] == addrs[1], "the restart serves the same address",
                      f"{addrs}")
        ok = not chk.failed()
    finally:
        subprocess.run(["bash", kafka_sh, "stop", str(svc)], capture_output=True,
                       timeout=120)
        # a start that failed may leave a shim that execs a broker later,
        # orphaned (what the old script did): kill until none has come up
        # for longer than the shim's sleep
        quiet_since = time.time()
        while time.time() - quiet_since < 1.5:
            pids = broker_processes(config, tmp / "shim")
            if pids:
                quiet_since = time.time()
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            time.sleep(0.1)
        lib.cleanup_tmpdir(tmp, ok)
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
