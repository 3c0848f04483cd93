#!/usr/bin/env python3
"""./run.sh on bad input: clear error, non-zero exit, bounded time, no hang.

(a)  a malformed seed URL: non-zero within 20 s, stderr names it, nothing
     started (no trawler-*, Kafka or Redis process, no "starting ..." line)
(a2) the same with a valid seed next to a malformed one (port 99999)
(b)  TRAWLER_BROKERS=127.0.0.1:1 (nothing listens): non-zero within 30 s,
     the message mentions Kafka
(c)  TRAWLER_REDIS=redis://127.0.0.1:1/0: non-zero within 30 s, mentions Redis
(d)  a loopback seed without --allow-private: non-zero, the message mentions
     --allow-private, and the seed host received no request at all
After every case no process started by that run.sh may be left running.

Run: python3 tests/integration/test_bad_input.py   (exit 0 = pass)
"""

import os
import re
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

# Progress messages about services, e.g. "Starting Kafka", "redis started".
# Lines with a negation ("nothing started", "Kafka not started") are fine.
STARTING_RE = [
    re.compile(r"\b(starting|started|launching)\b[^\n]{0,40}\b(kafka|redis|"
               r"broker|producers?|consumers?|workers?|services?)\b", re.I),
    re.compile(r"\b(kafka|redis|broker|producers?|consumers?|workers?|"
               r"services?)\b[^\n]{0,30}\b(started|starting|ready|"
               r"listening)\b", re.I)]
NEGATION_RE = re.compile(r"\b(not|no|nothing|never|without|refus\w*)\b", re.I)


def starting_lines(text):
    return [line.strip() for line in text.splitlines()
            if any(r.search(line) for r in STARTING_RE)
            and not NEGATION_RE.search(line)]


def common_checks(chk, tag, res, limit):
    chk.check(not res.timed_out and res.rc not in (0, None),
              f"{tag}: non-zero exit within {limit}s",
              res.describe())
    left = lib.leftover_processes(res.marker, grace=10)
    chk.check(not left, f"{tag}: nothing left running afterwards",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)


def nothing_started(chk, tag, res, before):
    svc = res.services_seen()
    chk.check(not svc, f"{tag}: no trawler/Kafka/Redis process was started",
              lib.show_list(f"pid {p}: {d['comm']}: {d['cmdline']}"
                            for p, d in svc.items()))
    said = starting_lines(res.output)
    chk.check(not said, f"{tag}: run.sh printed nothing about starting "
              "services", lib.show_list(said))
    new = lib.trawler_pids() - before
    if new:
        # Not ours (no marker, not a descendant): a concurrent run, probably.
        chk.info(f"{tag}: unrelated new trawler processes exist: {sorted(new)}")


def case_bad_url(chk, tag, args, bad):
    before = lib.trawler_pids()
    res = lib.run_trawler(args, timeout=20)
    common_checks(chk, tag, res, 20)
    chk.check(bad in res.stderr, f"{tag}: stderr names the bad URL {bad!r}",
              res.describe(20))
    nothing_started(chk, tag, res, before)


def main():
    chk = lib.Checker("integration.test_bad_input")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-badinput-")
    srv = lib.SiteServer(tmp / "site", ["127.0.0.2:0"], tmp / "requests.jsonl")
    try:
        hp = srv.start()[0]
        m = lib.generate_site(tmp / "site", [hp], 12, seed=7)
        seed = m["seeds"][0]
        out = str(tmp / "out")

        # (a) malformed seed
        bad = "ht!tp://bad url"
        case_bad_url(chk, "(a) malformed seed",
                     ["--allow-private", "--out", out, bad], bad)

        # (a2) malformed seed next to a valid one
        bad2 = f"http://{hp.split(':')[0]}:99999/"
        case_bad_url(chk, "(a2) valid + malformed seed",
                     ["--allow-private", "--out", out, seed, bad2], bad2)

        # (b) Kafka unreachable
        res = lib.run_trawler(["--allow-private", "--out", out, seed],
                              timeout=30,
                              env_extra={"TRAWLER_BROKERS": "127.0.0.1:1"})
        common_checks(chk, "(b) Kafka unreachable", res, 30)
        chk.check(re.search(r"kafka", res.output, re.I),
                  "(b) Kafka unreachable: the message mentions Kafka",
                  res.describe(20))

        # (c) Redis unreachable
        res = lib.run_trawler(["--allow-private", "--out", out, seed],
                              timeout=30, env_extra={
                                  "TRAWLER_REDIS": "redis://127.0.0.1:1/0"})
        common_checks(chk, "(c) Redis unreachable", res, 30)
        chk.check(re.search(r"redis", res.output, re.I),
                  "(c) Redis unreachable: the message mentions Redis",
                  res.describe(20))

        # (d) loopback seed without --allow-private
        n_before = len(srv.read_log())
        res = lib.run_trawler(["--out", out, seed], timeout=30)
        common_checks(chk, "(d) loopback without --allow-private", res, 30)
        chk.check("--allow-private" in res.output,
                  "(d) loopback without --allow-private: the message "
                  "mentions --allow-private", res.describe(20))
        reqs = srv.read_log()[n_before:]
        chk.check(not reqs, "(d) loopback without --allow-private: the seed "
                  "host received no request",
                  lib.show_list(f"{r['method']} {lib.log_url(r)}" for r in reqs))
    except Exception:
        chk.check(False, "test ran without an exception",
                  traceback.format_exc())
    finally:
        rc_srv = srv.stop()
    chk.check(rc_srv == 0, "test server stopped cleanly on SIGTERM",
              f"exit status {rc_srv}")
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
