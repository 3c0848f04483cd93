#!/usr/bin/env python3
"""HTTPS with a test CA, HTTP/2 by ALPN (issue 3, "HTTPS").

Generates, with the openssl CLI, a throw-away CA and a server certificate
for IP 127.0.0.6 in a temp dir (no key is committed), and serves a 3-page
site with nginx (Debian's nginx-light: ssl + http2) on 127.0.0.6:<free
port> ("listen ... ssl http2"), logging every request as JSON
($server_protocol, $ssl_alpn_protocol).

Run 1: TRAWLER_CA_FILE=ca.pem
  ./run.sh --allow-private --delay 0 --out OUT https://127.0.0.6:PORT/
  -> the 3 pages reported with status 200, their titles and
     http_version "2"; nginx saw each page once, every request over
     HTTP/2.0 with ALPN h2.
Run 2: no TRAWLER_CA_FILE (the system store does not know the test CA),
  TRAWLER_ROBOTS=false (so the seed itself meets the TLS failure, not its
  host's robots.txt, which would hold the host for TRAWLER_ROBOTS_RETRY)
  -> the seed is reported with status 0, error "tls" and an error_message
     that says what failed (mentions the certificate / verification); the
     crawl completes; nginx served no request (the handshake failed).

Run: python3 tests/integration/test_fetch_tls.py   (exit 0 = pass)
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

IP = "127.0.0.6"
RUN_TIMEOUT = 120
PAGES = {"/": "tls index", "/page2.html": "tls page 2", "/page3.html": "tls page 3"}
TLS_MESSAGE_RE = re.compile(r"certif|verif|issuer|trust", re.I)


def openssl(args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def make_pki(d, ip):
    """A test CA (ca.pem) and a server cert/key for `ip` (srv.pem, srv.key)
    in d, valid for 2 days."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=trawler test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    openssl(["req", *ec, "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", f"/CN={ip}"], d)
    (d / "ext.cnf").write_text(
        f"subjectAltName=IP:{ip}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl(["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "srv.pem", "-days", "2",
             "-extfile", "ext.cnf"], d)
    openssl(["verify", "-CAfile", "ca.pem", "srv.pem"], d)
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


NGINX_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format trawler escape=json '{{"t":$msec,"proto":"$server_protocol",'
      '"method":"$request_method","uri":"$request_uri","status":$status,'
      '"ua":"$http_user_agent","conn":$connection,"alpn":"$ssl_alpn_protocol",'
      '"tls":"$ssl_protocol","reused":"$ssl_session_reused"}}';
  access_log {d}/logs/access.jsonl trawler;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  types {{ text/html html; text/plain txt; }}
  default_type application/octet-stream;
  server {{
    listen {ip}:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    root {d}/www;
  }}
}}
"""


class Nginx:
    def __init__(self, d, ip):
        self.d, self.ip = d, ip
        self.proc = None
        self.port = None
        self.cert = self.key = None

    def start(self):
        for sub in ("logs", "tmp", "www"):
            (self.d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.d, 0o755)   # workers may run as an unprivileged user
        for _ in range(3):        # the free port may be taken meanwhile
            self.port = lib.free_port(self.ip)
            conf = self.d / "nginx.conf"
            conf.write_text(NGINX_CONF.format(d=self.d, ip=self.ip, port=self.port,
                                              cert=self.cert, key=self.key))
            out = open(self.d / "nginx.out", "wb")
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.d), "-c", str(conf), "-e",
                 str(self.d / "logs/error.log"), "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            out.close()
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((self.ip, self.port), timeout=1).close()
                    return self.port
                except OSError:
                    time.sleep(0.1)
            self.stop()
            msg = (self.d / "nginx.out").read_text(errors="replace")
            if "in use" not in msg:
                break
        raise RuntimeError(f"nginx did not start on {self.ip}:{self.port}:\n"
                           + msg[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def access_log(self):
        p = self.d / "logs/access.jsonl"
        if not p.exists():
            return []
        recs, _ = lib.read_jsonl(p)
        return recs


def fmt(r):
    return (f"{r.get('method')} {r.get('uri')} -> {r.get('status')} "
            f"{r.get('proto')} alpn={r.get('alpn')!r} conn {r.get('conn')}")


def main():
    chk = lib.Checker("integration.test_fetch_tls")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-tls-")
    chk.info(f"temp dir {tmp}")
    for binary, pkg in (("openssl", "openssl"), ("nginx", "nginx-light")):
        if not chk.check(lib.ensure_debian_package(binary, pkg),
                         f"{binary} available (Debian package {pkg})",
                         f"{binary} is not on PATH and could not be installed "
                         f"(deploy/deps.sh --test installs {pkg})"):
            return chk.summary()
    ngx = Nginx(tmp / "nginx", IP)
    try:
        with lib.shared_services(chk):
            ca, ngx.cert, ngx.key = make_pki(tmp / "pki", IP)
            www = tmp / "nginx" / "www"
            www.mkdir(parents=True, exist_ok=True)
            (www / "index.html").write_text(lib.html_doc(
                PAGES["/"], ["/page2.html", "/page3.html"]))
            (www / "page2.html").write_text(lib.html_doc(PAGES["/page2.html"], ["/"]))
            (www / "page3.html").write_text(lib.html_doc(PAGES["/page3.html"], ["/"]))
            for p in (tmp, tmp / "pki", www):
                os.chmod(p, 0o755)
            port = ngx.start()
            base = f"https://{IP}:{port}"
            chk.info(f"nginx on {base} (cert for IP {IP}, CA {ca})")

            # Run 1: trusted through TRAWLER_CA_FILE -> HTTP/2
            out1 = tmp / "out1"
            env1 = {"TRAWLER_CA_FILE": str(ca)}
            args = ["--allow-private", "--delay", "0", "--out", str(out1), base + "/"]
            chk.info(f"[1] env TRAWLER_CA_FILE={ca}; ./run.sh " + " ".join(args))
            res = lib.run_trawler(args, RUN_TIMEOUT, env_extra=env1)
            chk.check(not res.timed_out and res.rc == 0,
                      f"[1] run.sh exits 0 ({res.elapsed:.1f}s)", res.describe())
            if lib.leftover_processes(res.marker, grace=15):
                lib.kill_marker_processes(res.marker)
            recs = []
            if (out1 / "pages.jsonl").is_file():
                recs, _ = lib.read_jsonl(out1 / "pages.jsonl")
            for path, title in PAGES.items():
                lib.check_record(chk, f"[1] {path}: status 200, title, "
                                 "http_version \"2\"", recs, base + path,
                                 {"status": 200, "title": title,
                                  "http_version": "2", "error": lib.ABSENT})
            acc = ngx.access_log()
            n_after_run1 = len(acc)
            for path in PAGES:
                got = [r for r in acc if r.get("uri") == path]
                chk.check(len(got) == 1, f"[1] nginx served {path} exactly once",
                          f"saw {len(got)}:\n" + "\n".join(fmt(r) for r in got))
            not_h2 = [fmt(r) for r in acc if r.get("proto") != "HTTP/2.0"
                      or r.get("alpn") != "h2"]
            chk.check(acc and not not_h2, f"[1] every request ({len(acc)}) was "
                      "HTTP/2.0, negotiated by ALPN h2",
                      lib.show_list(not_h2) or "no request logged")
            chk.info(f"[1] nginx: {len({r.get('conn') for r in acc})} connection(s) "
                     f"for {len(acc)} request(s); TLS {sorted({r.get('tls') for r in acc})}")

            # Run 2: untrusted -> a clear TLS error
            out2 = tmp / "out2"
            env2 = {"TRAWLER_ROBOTS": "false", "TRAWLER_RETRY_BASE": "0.2"}
            args = ["--allow-private", "--delay", "0", "--out", str(out2), base + "/"]
            chk.info("[2] env TRAWLER_ROBOTS=false TRAWLER_RETRY_BASE=0.2, no "
                     "TRAWLER_CA_FILE; ./run.sh " + " ".join(args))
            res = lib.run_trawler(args, RUN_TIMEOUT, env_extra=env2,
                                  env_remove=("TRAWLER_CA_FILE",))
            chk.check(not res.timed_out and res.rc == 0,
                      f"[2] run.sh exits 0: the crawl completes ({res.elapsed:.1f}s)",
                      res.describe())
            if lib.leftover_processes(res.marker, grace=15):
                lib.kill_marker_processes(res.marker)
            recs = []
            if (out2 / "pages.jsonl").is_file():
                recs, _ = lib.read_jsonl(out2 / "pages.jsonl")

            def clear_message(m):
                """a message mentioning the certificate or its verification"""
                return isinstance(m, str) and bool(TLS_MESSAGE_RE.search(m))
            lib.check_record(chk, "[2] untrusted certificate: status 0, error "
                             "tls, a message naming the certificate problem",
                             recs, base + "/",
                             {"status": 0, "error": "tls",
                              "error_message": clear_message})
            later = ngx.access_log()[n_after_run1:]
            chk.check(not later, "[2] nginx served nothing (handshake refused)",
                      "\n".join(fmt(r) for r in later))
    except Exception:
        chk.check(False, "test setup and runs", traceback.format_exc())
    finally:
        ngx.stop()
    result = chk.summary()
    lib.cleanup_tmpdir(tmp, result == 0)
    return result


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
