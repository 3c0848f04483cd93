#!/usr/bin/env python3
"""The PostgreSQL sink against a real server from Debian.

Starts a throw-away PostgreSQL (initdb + pg_ctl from
/usr/lib/postgresql/*/bin, as the `postgres` user when run as root; unix
socket in a temp dir, TCP on 127.0.0.1 on a free port), generates a
2-host site, then:

1. crawls it with ./run.sh and TRAWLER_POSTGRES='host=127.0.0.1 port=P
   dbname=postgres user=trawler' in the environment (run.sh's workers
   inherit TRAWLER_*); psql then shows exactly one row per pages.jsonl URL,
   with the same status, content type, depth, title and crawl id;
2. redelivers the same pages: a second crawl (new crawl id, same site, a
   politeness delay so it takes a few seconds) while this test kills the
   consumer's database session once (pg_terminate_backend) mid-crawl. The
   row count and URL set are unchanged (upserts by URL), every row now
   carries the second crawl id, updated_at moved forward on every row, and
   the consumer logged that it reconnected;
3. a consumer pointed at a closed port fails at start-up with a message
   naming the server.

PostgreSQL is stopped at the end, always.

Run: python3 tests/integration/test_postgres.py   (exit 0 = pass)
Env: TRAWLER_BUILD_DIR, TRAWLER_BROKERS/TRAWLER_REDIS (else started here),
TRAWLER_KEEP_TMP=1, PG_PAGES (site size, default 60).
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

PAGES = int(os.environ.get("PG_PAGES", "60"))
TIMEOUT = 300
DB_USER = "trawler"
TABLE = "trawler_pages"


def pg_bindir():
    """Newest /usr/lib/postgresql/N/bin holding initdb and pg_ctl, or None
    (installs Debian's postgresql as root when missing)."""
    def find():
        dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
                if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK)]
        return max(dirs, key=lambda d: int(d.split("/")[-2])) if dirs else None
    if find() is None:
        lib.ensure_debian_package("pg_ctlcluster", "postgresql")
    return find()


class Postgres:
    """A private PostgreSQL cluster in `root` (created owned by the server's
    user), listening on 127.0.0.1:port and a unix socket in root/sock."""

    def __init__(self, root, bindir):
        self.root = Path(root)
        self.bin = Path(bindir)
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = lib.free_port("127.0.0.1")
        self.started = False
        # initdb refuses to run as root: run the server as `postgres`.
        self.as_user = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            self.as_user = [runuser, "-u", "postgres", "--"] if runuser else \
                ["su", "postgres", "-s", "/bin/sh", "-c"]

    def _run(self, argv, timeout=120):
        if self.as_user and self.as_user[0] == "su":
            import shlex
            argv = self.as_user + [" ".join(shlex.quote(a) for a in argv)]
        else:
            argv = self.as_user + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              cwd="/")

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            for p in (self.root, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o755)
            # the temp dir's parent must be searchable by postgres
            os.chmod(self.root.parent, 0o755)
        r = self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", DB_USER,
                       "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}{r.stderr}")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self.started = True   # from here on, stop() must run
        r = self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                       str(self.log), "-o", opts, "-w", "-t", "60", "start"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}{r.stderr}\n"
                               + (self.log.read_text(errors="replace")
                                  if self.log.exists() else ""))

    def stop(self):
        if not self.started:
            return True
        r = self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                       "-w", "-t", "60", "stop"])
        if r.returncode != 0:   # last resort: the postmaster's pid, SIGQUIT
            try:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, 3)
            except (OSError, ValueError, IndexError):
                pass
        self.started = False
        return r.returncode == 0

    @property
    def conninfo(self):
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={DB_USER}"

    def psql(self, sql):
        """Rows of a query (tab-separated fields, NULL as \\N)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-P",
                            "null=\\N", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", DB_USER, "-d", "postgres",
                            "-c", sql], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr}")
        return [ln.split("\t") for ln in r.stdout.splitlines() if ln]

    def psql_json(self, sql):
        """The single JSON value a query returns."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER,
                            "-d", "postgres", "-c", sql], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr}")
        return json.loads(r.stdout)


def db_rows(pg):
    """{url: {...}} from the table, via psql (as one JSON document, so titles
    with tabs or newlines survive)."""
    rows = pg.psql_json(
        f"SELECT coalesce(json_agg(t), '[]') FROM (SELECT url, crawl_id, status, "
        f"coalesce(content_type, '') AS content_type, depth, title, fields, "
        f"extract(epoch from updated_at)::float8 AS updated_at, "
        f"fetched_at IS NOT NULL AS fetched_at FROM {TABLE}) t")
    return {r.pop("url"): r for r in rows}


def compare(chk, label, rows, records, crawl_id):
    by_url = {}
    for rec in records:
        by_url[rec["url"]] = rec   # the last record of a URL is the upserted one
    dups = len(records) - len(by_url)
    if dups:
        chk.info(f"{label}: {dups} duplicate URL(s) in pages.jsonl")
    missing = sorted(set(by_url) - set(rows))
    extra = sorted(set(rows) - set(by_url))
    chk.check(by_url and len(rows) == len(by_url) and not missing and not extra,
              f"{label}: one row per pages.jsonl URL ({len(rows)} rows, "
              f"{len(by_url)} URLs)",
              f"missing from the table:\n{lib.show_list(missing)}\n"
              f"not in pages.jsonl:\n{lib.show_list(extra)}")
    bad = []
    for url, rec in by_url.items():
        row = rows.get(url)
        if row is None:
            continue
        want = {"status": rec.get("status"), "content_type": rec.get("content_type", ""),
                "depth": rec.get("depth"), "title": rec.get("title"),
                "crawl_id": crawl_id, "fetched_at": True}
        diff = [f"{k}: row {row[k]!r}, expected {v!r}" for k, v in want.items()
                if row[k] != v]
        if row["fields"] != {}:
            diff.append(f"fields: {row['fields']} (no extractor ran: expected {{}})")
        if diff:
            bad.append(f"{url}: " + "; ".join(diff))
    chk.check(not bad, f"{label}: status, content_type, depth, title, crawl_id "
              "and fetched_at of every row match pages.jsonl", lib.show_list(bad))


def crawl(chk, args, timeout, env):
    chk.info("running ./run.sh " + " ".join(args))
    return lib.run_trawler(args, timeout=timeout, env_extra=env)


def check_leftovers(chk, label, res):
    left = lib.leftover_processes(res.marker, grace=15)
    chk.check(not left, f"{label}: every process run.sh started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)


def consumer_sessions(pg):
    return [r[0] for r in pg.psql("SELECT pid FROM pg_stat_activity "
                                  "WHERE application_name = 'trawler-consumer'")]


def main():
    chk = lib.Checker("integration.test_postgres")
    if not lib.require_run_sh(chk):
        return chk.summary()
    bindir = pg_bindir()
    if not chk.check(bindir and shutil.which("psql"),
                     "PostgreSQL server binaries and psql are installed",
                     "no /usr/lib/postgresql/*/bin/initdb or no psql "
                     "(deploy/deps.sh --test installs postgresql)"):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-pg-")
    chk.info(f"temp dir {tmp}, PostgreSQL from {bindir}")
    pg = Postgres(tmp / "pg", bindir)
    srv = lib.SiteServer(tmp / "site", ["127.0.0.2:0", "127.0.0.3:0"],
                         tmp / "requests.jsonl")
    try:
        pg.start()
        chk.info(f"PostgreSQL on 127.0.0.1:{pg.port}")
        with lib.shared_services(chk):
            hosts = srv.start()
            m = lib.generate_site(tmp / "site", hosts, PAGES, seed=7)
            env = {"TRAWLER_POSTGRES": pg.conninfo}
            stamp = time.strftime("%H%M%S")

            # 1. first crawl
            cid1 = f"pg-first-{stamp}-{os.getpid()}"
            out1 = tmp / "out1"
            res = crawl(chk, ["--allow-private", "--delay", "0", "--host-connections", "4",
                              "--crawl-id", cid1, "--out", str(out1), *m["seeds"]],
                        TIMEOUT, env)
            ok1 = chk.check(not res.timed_out and res.rc == 0,
                            "first crawl: run.sh exits 0", res.describe())
            check_leftovers(chk, "first crawl", res)
            records1, errors = lib.read_jsonl(out1 / "pages.jsonl") \
                if (out1 / "pages.jsonl").exists() else ([], ["no pages.jsonl"])
            chk.check(not errors and len(records1) >= PAGES,
                      f"first crawl: pages.jsonl has the site ({len(records1)} records)",
                      lib.show_list(errors))
            rows1 = db_rows(pg)
            compare(chk, "first crawl", rows1, records1, cid1)
            cols = pg.psql(f"SELECT column_name || ' ' || data_type FROM "
                           f"information_schema.columns WHERE table_name = '{TABLE}' "
                           f"ORDER BY ordinal_position")
            chk.check([c[0] for c in cols] == [
                "url text", "crawl_id text", "status integer", "content_type text",
                "depth integer", "title text", "fields jsonb",
                "fetched_at timestamp with time zone",
                "updated_at timestamp with time zone"],
                f"table {TABLE} has the documented columns", lib.show_list(cols))
            pk = pg.psql(f"SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                         f"a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                         f"WHERE i.indrelid = '{TABLE}'::regclass AND i.indisprimary")
            chk.check(pk == [["url"]], "url is the primary key", str(pk))

            # 2. redelivery: same pages, new crawl, one killed session
            cid2 = f"pg-again-{stamp}-{os.getpid()}"
            out2 = tmp / "out2"
            args = ["--allow-private", "--delay", "0.15", "--crawl-id", cid2,
                    "--out", str(out2), *m["seeds"]]
            chk.info("running ./run.sh " + " ".join(args))
            killed = None
            with lib.run_trawler_bg(args, timeout=TIMEOUT, env_extra=env) as bg:
                def some_rows_of_crawl2():
                    n = pg.psql(f"SELECT count(*) FROM {TABLE} WHERE crawl_id = '{cid2}'")
                    return int(n[0][0]) >= 2
                if lib.wait_until(some_rows_of_crawl2, 120, interval=0.1) and bg.running():
                    pids = consumer_sessions(pg)
                    for pid in pids:
                        pg.psql(f"SELECT pg_terminate_backend({int(pid)})")
                    killed = pids
                    n = pg.psql(f"SELECT count(*) FROM {TABLE} WHERE crawl_id = '{cid2}'")
                    chk.info(f"terminated consumer session(s) {pids} with "
                             f"{n[0][0]} row(s) of the second crawl written")
            res2 = bg.join()
            chk.check(killed, "second crawl: the consumer's database session was "
                      "killed while the crawl ran", f"sessions killed: {killed}")
            chk.check(not res2.timed_out and res2.rc == 0,
                      "second crawl: run.sh exits 0 (the consumer reconnected)",
                      res2.describe())
            check_leftovers(chk, "second crawl", res2)
            logs = "".join(p.read_text(errors="replace")
                           for p in sorted((out2 / "logs").glob("consumer-*.log")))
            chk.check("reconnecting" in logs, "second crawl: the consumer logged "
                      "the lost connection and reconnected",
                      lib.tail(logs, 15))
            records2, errors2 = lib.read_jsonl(out2 / "pages.jsonl") \
                if (out2 / "pages.jsonl").exists() else ([], ["no pages.jsonl"])
            chk.check(not errors2 and records2 and {r["url"] for r in records2} ==
                      {r["url"] for r in records1},
                      "second crawl fetched the same pages again",
                      f"{len(records2)} records; {lib.show_list(errors2)}")
            rows2 = db_rows(pg)
            count = int(pg.psql(f"SELECT count(*) FROM {TABLE}")[0][0])
            chk.check(rows1 and count == len(rows1) and set(rows2) == set(rows1),
                      f"after redelivery the row count is unchanged "
                      f"({len(rows1)} -> {count}) and the URLs are the same",
                      f"new URLs: {lib.show_list(sorted(set(rows2) - set(rows1)))}")
            compare(chk, "second crawl", rows2, records2, cid2)
            stale = [f"{u}: {rows1[u]['updated_at']} -> {r['updated_at']}"
                     for u, r in rows2.items()
                     if u in rows1 and not r["updated_at"] > rows1[u]["updated_at"]]
            chk.check(rows2 and not stale, "updated_at moved forward on every row",
                      lib.show_list(stale))
            srv.stop()
            if not ok1:
                chk.info("first crawl failed: later checks may be meaningless")

        # 3. an unreachable server fails the consumer at start-up
        consumer = lib.build_dir() / "trawler-consumer"
        bad_port = lib.free_port("127.0.0.1")
        t0 = time.time()
        r = subprocess.run([str(consumer), "--postgres",
                            f"host=127.0.0.1 port={bad_port} dbname=postgres user=x",
                            "--brokers", "127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0"],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        chk.check(r.returncode != 0 and "postgres: cannot connect" in out
                  and f"port={bad_port}" in out and time.time() - t0 < 30,
                  "a consumer whose database is unreachable exits at start-up "
                  "with a clear message", f"exit {r.returncode}\n{lib.tail(out)}")
    except Exception:
        chk.check(False, "test ran without an exception", traceback.format_exc())
    finally:
        srv.stop()
        stopped = pg.stop()
    chk.check(stopped, "PostgreSQL stopped cleanly",
              pg.log.read_text(errors="replace")[-2000:] if pg.log.exists() else "")
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
