#!/usr/bin/env python3
"""Multi-address static test HTTP server with a JSON-lines request log.

Usage:
  server.py --root DIR --listen 127.0.0.2:PORT [--listen ...] --log FILE.jsonl
            [--port-file F]

Each --listen address serves DIR/<host>_<port>/ (the port actually bound;
PORT may be 0 = pick a free one; then --port-file receives the JSON list
["host:port", ...] in --listen order, written atomically once every socket
listens). Only 127.0.0.0/8 addresses are accepted.

HTTP/1.1 with keep-alive, GET and HEAD, Content-Length always set. The query
string is ignored when mapping a path to a file; '/' and '.../' serve
index.html. One JSON line per request is appended (and flushed) to the log:
  {"host", "method", "path" (raw request target, with query), "status",
   "t_start", "t_end", "conn", "peer_port", "bytes", "ua"}

Special endpoints: a table of path prefix -> handler (see ROUTES and
@route). Each handler gets a Request and returns a Response. Present:
  /__redirect/N   301 to /__redirect/N-1, and from N<=1 to /
  /__slow/SECS    sleep SECS (float, capped) then 200 text/plain
SIGTERM or SIGINT: stop accepting, close, exit 0.
"""

import argparse
import ipaddress
import itertools
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sitecommon import (NOT_FOUND_BODY, NOT_FOUND_CONTENT_TYPE,  # noqa: E402
                        content_type_for, host_dir_name, url_path_to_relfile)

MAX_SLOW_SECONDS = 600.0
IDLE_TIMEOUT = 30  # seconds a keep-alive connection may sit idle


# --------------------------------------------------------------------------
# Request / response model for handlers

class Request:
    """What a handler sees. `server` is the SiteHTTPServer (per address);
    `server.state` (dict) and `server.state_lock` are for handlers that
    need memory across requests (e.g. 'fail twice then succeed')."""

    def __init__(self, handler, method):
        self.handler = handler
        self.method = method
        self.target = handler.path
        split = urlsplit(handler.path)
        self.path = split.path
        self.query = split.query
        self.args = parse_qs(split.query)
        self.headers = handler.headers
        self.server = handler.server
        self.host = handler.server.label
        self.root = handler.server.site_dir
        self.conn = handler.conn_id


class Response:
    """status, headers (list of (name, value)), body bytes. Content-Length
    is added by the server from len(body) unless a handler sets it. HEAD
    gets the headers of the GET response and no body.
    `chunks`: optional iterable of (delay_seconds, bytes) written after the
    headers instead of `body` (for slow or stalled bodies later); then
    Content-Length must be given explicitly in headers by the handler."""

    def __init__(self, status, body=b"", content_type="text/plain; charset=utf-8",
                 headers=None, chunks=None, close=False):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        if content_type and not any(k.lower() == "content-type"
                                    for k, _ in self.headers):
            self.headers.append(("Content-Type", content_type))
        self.chunks = chunks
        self.close = close


ROUTES = {}   # path prefix -> fn(Request, rest_of_path) -> Response


def route(prefix):
    def deco(fn):
        ROUTES[prefix] = fn
        return fn
    return deco


def not_found():
    return Response(404, NOT_FOUND_BODY, NOT_FOUND_CONTENT_TYPE)


@route("/__redirect/")
def redirect_chain(req, rest):
    try:
        n = int(rest)
    except ValueError:
        return not_found()
    loc = f"/__redirect/{n - 1}" if n > 1 else "/"
    body = f"redirect to {loc}\n".encode()
    return Response(301, body, headers=[("Location", loc)])


@route("/__slow/")
def slow(req, rest):
    try:
        secs = min(max(float(rest), 0.0), MAX_SLOW_SECONDS)
    except ValueError:
        return not_found()
    req.server.stop_event.wait(secs)
    return Response(200, f"slept {secs:g}\n".encode())


def static_file(req):
    rel = url_path_to_relfile(req.path)
    if rel is None:
        return not_found()
    fp = os.path.join(req.root, rel)
    if os.path.isdir(fp) and not req.path.endswith("/"):
        loc = req.path + "/" + (f"?{req.query}" if req.query else "")
        return Response(301, f"see {loc}\n".encode(),
                        headers=[("Location", loc)])
    try:
        with open(fp, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError):
        return not_found()
    return Response(200, data, content_type_for(rel))


def dispatch(req):
    for prefix in sorted(ROUTES, key=len, reverse=True):
        if req.path.startswith(prefix):
            return ROUTES[prefix](req, req.path[len(prefix):])
    return static_file(req)


# --------------------------------------------------------------------------
# Logging

class RequestLog:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.fh = open(path, "a", encoding="utf-8") if path else None

    def write(self, rec):
        if self.fh is None:
            return
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self.lock:
            self.fh.write(line)
            self.fh.flush()

    def close(self):
        with self.lock:
            if self.fh:
                self.fh.close()
                self.fh = None


_conn_ids = itertools.count(1)
_conn_lock = threading.Lock()


def next_conn_id():
    with _conn_lock:
        return next(_conn_ids)


# --------------------------------------------------------------------------
# HTTP plumbing

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "trawler-test-site/1"
    timeout = IDLE_TIMEOUT
    # Without TCP_NODELAY a keep-alive client waits ~40 ms per request
    # (Nagle + delayed ACK), which skews throughput and timing tests.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.conn_id = next_conn_id()

    def log_message(self, fmt, *args):  # silence stderr access log
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.server.label, fmt % args))

    def do_GET(self):
        self.serve("GET")

    def do_HEAD(self):
        self.serve("HEAD")

    def refuse(self):
        self.serve(self.command, allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse

    def serve(self, method, allowed=True):
        t_start = time.time()
        status, nbytes, error = 0, 0, None
        try:
            if not allowed:
                resp = Response(405, b"method not allowed\n",
                                headers=[("Allow", "GET, HEAD")])
            else:
                try:
                    resp = dispatch(Request(self, method))
                except Exception as e:  # handler bug: report, keep serving
                    resp = Response(500, f"handler error: {e!r}\n".encode())
            status = resp.status
            nbytes = self.write_response(method, resp)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
            error = type(e).__name__
            self.close_connection = True
        finally:
            rec = {"host": self.server.label, "method": method,
                   "path": self.path, "status": status,
                   "t_start": t_start, "t_end": time.time(),
                   "conn": self.conn_id, "peer_port": self.client_address[1],
                   "bytes": nbytes, "ua": self.headers.get("User-Agent", "")}
            if error:
                rec["error"] = error
            self.server.reqlog.write(rec)

    def write_response(self, method, resp):
        self.send_response(resp.status)
        names = {k.lower() for k, _ in resp.headers}
        for k, v in resp.headers:
            self.send_header(k, v)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(resp.body)))
        if resp.close or self.server.stop_event.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        if method == "HEAD":
            self.end_headers()
            return 0
        if resp.chunks is None:
            # Headers and body in one write (one segment for small pages).
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(resp.body)
            self.flush_headers()
            return len(resp.body)
        self.end_headers()
        n = 0
        for delay, data in resp.chunks:
            if delay > 0 and self.server.stop_event.wait(delay):
                self.close_connection = True
                break
            self.wfile.write(data)
            n += len(data)
        self.wfile.flush()
        return n


class SiteHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, addr, root, reqlog, stop_event, verbose=False):
        super().__init__(addr, Handler)
        host, port = self.server_address[:2]
        self.label = f"{host}:{port}"
        self.site_dir = os.path.join(root, host_dir_name(self.label))
        self.reqlog = reqlog
        self.stop_event = stop_event
        self.verbose = verbose
        self.state = {}
        self.state_lock = threading.Lock()


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"bad --listen {s!r}, want HOST:PORT")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen needs an IP, got {host!r}")
    if ip not in ipaddress.ip_network("127.0.0.0/8"):
        raise argparse.ArgumentTypeError(f"{host} is not in 127.0.0.0/8")
    return host, int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--listen", action="append", required=True,
                    type=parse_listen)
    ap.add_argument("--log", default=None, help="JSON-lines request log")
    ap.add_argument("--port-file", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    stop = threading.Event()
    reqlog = RequestLog(args.log)
    servers = []
    try:
        for host, port in args.listen:
            servers.append(SiteHTTPServer((host, port), os.path.abspath(args.root),
                                          reqlog, stop, args.verbose))
    except OSError as e:
        print(f"server.py: cannot listen: {e}", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                             name=f"serve-{s.label}", daemon=True)
        t.start()
        threads.append(t)

    labels = [s.label for s in servers]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(labels, fh)
        os.replace(tmp, args.port_file)
    print("server.py: listening on " + " ".join(labels), flush=True)

    while not stop.wait(1.0):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    reqlog.close()
    print("server.py: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
