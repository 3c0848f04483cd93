#!/usr/bin/env python3
"""Multi-address static test HTTP server with a JSON-lines request log.

Usage:
  server.py --root DIR --listen 127.0.0.2:PORT [--listen ...] --log FILE.jsonl
            [--port-file F] [--conn-log FILE.jsonl]
            [--slow HOST:PORT=SECS] [--robots-status HOST:PORT=CODE[xN]]

Each --listen address serves DIR/<host>_<port>/ (the port actually bound;
PORT may be 0 = pick a free one; then --port-file receives the JSON list
["host:port", ...] in --listen order, written atomically once every socket
listens). Only 127.0.0.0/8 addresses are accepted.

HTTP/1.1 with keep-alive, GET and HEAD, Content-Length always set (except
on 1xx/204/304). The query string is ignored when mapping a path to a file;
'/' and '.../' serve index.html. robots.txt is an ordinary static file (a
test writes DIR/<host>_<port>/robots.txt; none = 404). One JSON line per
request is appended (and flushed) to the log:
  {"host", "method", "path" (raw request target, with query), "status",
   "t_start", "t_end", "conn", "peer_port", "bytes", "ua"}
  plus, only when the request had them: "ae" (Accept-Encoding), "range",
  "inm" (If-None-Match), "ims" (If-Modified-Since); "error" when the
  client went away mid-response; "stalled": true for /__stall/ (status 0,
  t_end = when the client gave up).
  t_start is when the request's first byte reached the socket (kernel
  receive timestamp, SO_TIMESTAMPNS, on Linux; else when it was parsed),
  so thread scheduling in this server cannot skew gaps between requests;
  t_end is when the last byte of the response was written.
--conn-log FILE: one JSON line per TCP connection when it closes:
  {"host", "conn", "peer_port", "t_open", "t_close", "requests"}

Per-listener modes. HOST:PORT is the --listen argument as given (e.g.
127.0.0.15:0) or the bound address; it must name exactly one listener.
  --slow HOST:PORT=SECS          every response of that listener is delayed
                                 SECS (t_start is still the arrival time)
  --robots-status HOST:PORT=CODE[xN]
                                 /robots.txt answers CODE (e.g. 503): always,
                                 or only the first N times, then the static
                                 file (or 404) as usual
  --validators HOST:PORT         static files get an ETag (hash of the
                                 content) and a Last-Modified (file mtime),
                                 and 304 for a matching If-None-Match or,
                                 without one, an If-Modified-Since not
                                 before the mtime

Special endpoints: a table of path prefix -> handler (see ROUTES and
@route). Each handler gets a Request and returns a Response. Endpoints
that count requests keep their state per server and per full path, so a
test puts its own token in the path to stay independent of other tests.
Paths below: <t> = any token without '/'; [/...] = any suffix (ignored).
  /__redirect/N             301 to /__redirect/N-1, and from N<=1 to /
  /__slow/SECS              sleep SECS (float, capped) then 200 text/plain
  /__status/CODE[/...]      answers CODE (100..599) with a small HTML body
  /__503then200/<t>/N[/...] 503 the first N times, then 200 HTML (title
                            "503then200 <t>")
  /__429/<t>/SECS[/...]     429 with Retry-After: SECS the first time, then
                            200 HTML (title "429 <t>")
  /__gzip/<name>            HTML (title "gzip <name>", see encoded_page_html)
  /__deflate/<name>         sent with Content-Encoding gzip / deflate / br,
  /__brotli/<name>          whatever the request's Accept-Encoding says.
                            Brotli: the `brotli` CLI when on PATH at start-up,
                            else a built-in encoder (valid RFC 7932 stream of
                            small uncompressed meta-blocks)
  /__big/BYTES[/...]        200 text/html body of exactly BYTES bytes
                            (big_body(BYTES), title "big BYTES")
  /__slowbody/SECS[/...]    200 text/html, headers at once, then the body
                            (1000 bytes, Content-Length set) trickles in 20
                            pieces over SECS seconds
  /__stall/<t>              reads the request, never answers; closes when the
                            client gives up (or at shutdown)
  /__redirect_loop/<t>      302 to /__redirect_loop/<t>/b, which 302s back
  /__chain/<t>/N            302 to /__chain/<t>/N-1 ... /__chain/<t>/0 is
                            200 HTML (title "chain end <t>")
  /__redirect_to?url=U[&status=S]   S (default 302) to the absolute URL U
  /__range/<name>[?size=N]  N (default 1000) bytes of range_body(N),
                            text/plain, Accept-Ranges: bytes; a single
                            "Range: bytes=a-b" / "a-" / "-n" gets 206 with
                            Content-Range, an unsatisfiable one 416
  /__etag/<t>               200 HTML with ETag "etag-<t>" and a fixed
                            Last-Modified; 304 on a matching If-None-Match
                            or an If-Modified-Since not before it
Adversarial endpoints (hostile servers; each bounded in time and memory
on the server side too: generated lazily, capped at ADV_MAX_SECONDS and
ADV_MAX_BYTES, stopped when the client goes away):
  /__gzipbomb/<t>           chunked, Content-Encoding gzip: 2 GiB of decoded
                            HTML (title "gzip bomb <t>", then spaces)
                            compressed on the fly (~2 MiB on the wire)
  /__endless/<t>[/trickle]  chunked, never ends: 16 KiB chunks at full
                            speed, or 256 bytes every 0.1 s (trickle)
  /__slowloris/<t>/head|body  one byte per second: the whole response, or
                            the body after prompt headers
  /__chain/<t>/10000        (above) a 10,000-hop redirect chain
  /__hugeurl/<t>/BYTES      page linking to /__hugetarget/<t>/aaa.. (BYTES),
                            then a rel=nofollow link
  /__hugelocation/<t>/BYTES 302 to /__hugetarget/<t>/aaa.. (BYTES)
  /__headers/<t>/N/SIZE     200 HTML with N extra headers of SIZE bytes
  /__binary/<t>/utf8|none   HTML with invalid UTF-8, NULs and binary junk
                            (charset=utf-8 declared, or no charset)
  /__sjis/<t>               Shift_JIS HTML with one invalid byte sequence
                            before its two links
  /__nested/<t>/DEPTH       DEPTH unclosed <div>s, then a link
  /__manylinks/<t>/N        N distinct links (robots nofollow)
  /__bigtitle/<t>/BYTES     a <title> longer than BYTES
  /__trap/<t>/YYYY/MM/DD    endless calendar: links to the next day and the
                            next month
  /__midbody/<t>            chunked, closed in the middle of a chunk
  /__cl/<t>/long|short      Content-Length 10000 with 2000 bytes then close;
                            Content-Length 200 with 4000 bytes, kept open
  /__http10/<t>             HTTP/1.0, no Content-Length, close-delimited
SIGTERM or SIGINT: stop accepting, close, exit 0.
"""

import argparse
import calendar
import datetime
import email.utils
import gzip
import hashlib
import html
import ipaddress
import itertools
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
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
    Content-Length must be given explicitly in headers by the handler.
    `stall`: write nothing at all; wait until the client closes the
    connection (or the server stops), then close it (logged status 0).
    `raw`: optional iterable of (delay_seconds, bytes) written verbatim
    INSTEAD of a response: the handler writes the status line, the headers
    and any (mis)framing itself (adversarial endpoints). Pulled lazily, so a
    generator may stand for gigabytes; writing stops when the client goes
    away, the server stops, or a write blocks for IDLE_TIMEOUT. `status` is
    what the log records. With `close` the connection is closed afterwards
    (the usual case); without, the server reads the next request from it."""

    def __init__(self, status, body=b"", content_type="text/plain; charset=utf-8",
                 headers=None, chunks=None, close=False, stall=False, raw=None):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        if content_type and raw is None and not any(
                k.lower() == "content-type" for k, _ in self.headers):
            self.headers.append(("Content-Type", content_type))
        self.chunks = chunks
        self.close = close
        self.stall = stall
        self.raw = raw


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


# --------------------------------------------------------------------------
# Fetch-behaviour endpoints (politeness, retries, HTTP details)

MAX_BIG_BYTES = 32 * 1024 * 1024
SLOWBODY_BYTES = 1000
SLOWBODY_PIECES = 20
RANGE_DEFAULT_SIZE = 1000
ETAG_LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
HTML_TYPE = "text/html; charset=utf-8"


def html_page(title, body_html=""):
    """A small HTML page with that <title> (escaped)."""
    t = html.escape(title, quote=False)
    return (f"<!DOCTYPE html>\n<html><head><title>{t}</title></head>"
            f"<body>\n<h1>{t}</h1>\n{body_html}</body></html>\n").encode()


def count_hit(req, key=None):
    """How many times this path (or key) was requested before, then +1.
    State is per listener, so tests use a token of their own in the path."""
    key = ("hits", key if key is not None else req.path)
    with req.server.state_lock:
        n = req.server.state.get(key, 0)
        req.server.state[key] = n + 1
    return n


def _split_rest(rest, nparts):
    """'a/b/c/d' -> ['a', 'b'] for nparts=2 (suffix ignored), or None when
    fewer than nparts non-empty parts."""
    parts = rest.split("/")
    if len(parts) < nparts or any(not p for p in parts[:nparts]):
        return None
    return parts[:nparts]


@route("/__status/")
def status_code(req, rest):
    parts = _split_rest(rest, 1)
    if not parts or not parts[0].isdigit() or not 100 <= int(parts[0]) <= 599:
        return not_found()
    code = int(parts[0])
    return Response(code, html_page(f"status {code}"), HTML_TYPE)


@route("/__503then200/")
def fail_then_ok(req, rest):
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit():
        return not_found()
    token, n = parts[0], int(parts[1])
    if count_hit(req) < n:
        return Response(503, html_page("503 Service Unavailable"), HTML_TYPE)
    return Response(200, html_page(f"503then200 {token}"), HTML_TYPE)


@route("/__429/")
def too_many_then_ok(req, rest):
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit():
        return not_found()
    token, secs = parts[0], parts[1]
    if count_hit(req) == 0:
        return Response(429, html_page("429 Too Many Requests"), HTML_TYPE,
                        headers=[("Retry-After", secs)])
    return Response(200, html_page(f"429 {token}"), HTML_TYPE)


# Content-Encoding bodies. The decoded body is encoded_page_html(kind, name);
# tests import it to know the exact decoded size and title.

def encoded_page_html(kind, name):
    """Decoded HTML of /__<kind>/<name>: title '<kind> <name>', ~4 KB of
    text so that compression matters."""
    para = ("<p>" + " ".join(f"word{i % 17} {kind}" for i in range(40))
            + "</p>\n")
    return html_page(f"{kind} {name}", para * 12)


def brotli_stored(data, block=3):
    """A valid brotli stream (RFC 7932) made of uncompressed meta-blocks of
    `block` bytes: WBITS=16, then per block ISLAST=0, MNIBBLES=4, MLEN-1,
    ISUNCOMPRESSED=1, byte-aligned data; finally ISLAST=1, ISLASTEMPTY=1.
    Small blocks interleave header bytes every few bytes, so the raw stream
    is not readable HTML (a client that does not decode finds no title)."""
    out = bytearray()
    acc = nbits = 0

    def put(value, n):
        nonlocal acc, nbits
        acc |= value << nbits
        nbits += n
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    def align():
        if nbits:
            put(0, 8 - nbits)

    put(0, 1)                       # WBITS = 16
    for i in range(0, len(data), block):
        chunk = data[i:i + block]
        put(0, 1)                   # ISLAST = 0
        put(0, 2)                   # MNIBBLES = 4
        put(len(chunk) - 1, 16)     # MLEN - 1
        put(1, 1)                   # ISUNCOMPRESSED
        align()
        out += chunk
    put(1, 1)                       # ISLAST
    put(1, 1)                       # ISLASTEMPTY
    align()
    return bytes(out)


BROTLI_CLI = None   # path of the brotli CLI, set in main() when on PATH


def brotli_encode(data):
    if BROTLI_CLI:
        r = subprocess.run([BROTLI_CLI, "-c", "-q", "9"], input=data,
                           capture_output=True, timeout=30)
        if r.returncode == 0 and r.stdout:
            return r.stdout
    return brotli_stored(data)


ENCODERS = {
    "gzip": ("gzip", lambda d: gzip.compress(d, mtime=0)),
    "deflate": ("deflate", zlib.compress),   # HTTP "deflate" = zlib format
    "brotli": ("br", brotli_encode),
}


def _encoded(kind):
    coding, enc = ENCODERS[kind]

    def handler(req, rest):
        if not rest or "/" in rest:
            return not_found()
        key = ("encoded", kind, rest)
        with req.server.state_lock:
            body = req.server.state.get(key)
        if body is None:
            body = enc(encoded_page_html(kind, rest))
            with req.server.state_lock:
                req.server.state[key] = body
        return Response(200, body, HTML_TYPE,
                        headers=[("Content-Encoding", coding),
                                 ("Vary", "Accept-Encoding")])
    return handler


for _kind in ENCODERS:
    route(f"/__{_kind}/")(_encoded(_kind))


def big_body(n):
    """Exactly n bytes of HTML with title 'big n' (when n allows it)."""
    head = f"<!DOCTYPE html>\n<html><head><title>big {n}</title></head><body>\n".encode()
    tail = b"\n</body></html>\n"
    if n < len(head) + len(tail):
        return (b"x" * n)
    fill = n - len(head) - len(tail)
    line = b"<p>" + b"y" * 72 + b"</p>\n"
    return head + (line * (fill // len(line) + 1))[:fill] + tail


@route("/__big/")
def big(req, rest):
    parts = _split_rest(rest, 1)
    if not parts or not parts[0].isdigit() or int(parts[0]) > MAX_BIG_BYTES:
        return not_found()
    return Response(200, big_body(int(parts[0])), HTML_TYPE)


@route("/__slowbody/")
def slow_body(req, rest):
    parts = _split_rest(rest, 1)
    try:
        secs = min(max(float(parts[0]), 0.0), MAX_SLOW_SECONDS)
    except (TypeError, ValueError):
        return not_found()
    body = html_page(f"slowbody {secs:g}")
    body = (body + b" " * SLOWBODY_BYTES)[:SLOWBODY_BYTES]
    step = len(body) // SLOWBODY_PIECES
    pieces = [body[i * step:(i + 1) * step if i < SLOWBODY_PIECES - 1 else None]
              for i in range(SLOWBODY_PIECES)]
    delay = secs / (SLOWBODY_PIECES - 1)
    chunks = [(0 if i == 0 else delay, p) for i, p in enumerate(pieces)]
    return Response(200, content_type=HTML_TYPE, chunks=chunks,
                    headers=[("Content-Length", str(len(body)))])


@route("/__stall/")
def stall(req, rest):
    return Response(0, stall=True)


@route("/__redirect_loop/")
def redirect_loop(req, rest):
    parts = rest.split("/")
    if not parts[0] or len(parts) > 2 or (len(parts) == 2 and parts[1] != "b"):
        return not_found()
    a = f"/__redirect_loop/{parts[0]}"
    loc = a if len(parts) == 2 else a + "/b"
    return Response(302, f"redirect to {loc}\n".encode(),
                    headers=[("Location", loc)])


@route("/__chain/")
def chain(req, rest):
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit():
        return not_found()
    token, n = parts[0], int(parts[1])
    if n == 0:
        return Response(200, html_page(f"chain end {token}"), HTML_TYPE)
    loc = f"/__chain/{token}/{n - 1}"
    return Response(302, f"redirect to {loc}\n".encode(),
                    headers=[("Location", loc)])


@route("/__redirect_to")
def redirect_to(req, rest):
    url = req.args.get("url", [None])[0]
    try:
        code = int(req.args.get("status", ["302"])[0])
    except ValueError:
        code = 0
    if rest not in ("", "/") or not url or not 300 <= code <= 399:
        return not_found()
    return Response(code, f"redirect to {url}\n".encode(),
                    headers=[("Location", url)])


def range_body(n):
    """n bytes: '0000000\\n0000008\\n...' (each line = its own offset)."""
    return b"".join(b"%07d\n" % i for i in range(0, n + 8, 8))[:n]


def parse_range(value, size):
    """'bytes=a-b' -> (first, last) clamped to size, 'unsatisfiable', or
    None (absent, malformed or multi-range: serve the whole body)."""
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return (max(size - n, 0), size - 1)
        a = int(first)
        b = int(last) if last != "" else None
    except ValueError:
        return None
    if a < 0 or (b is not None and a > b):
        return None                     # invalid: ignored, whole body
    if a >= size:
        return "unsatisfiable"
    return (a, size - 1 if b is None else min(b, size - 1))


@route("/__range/")
def ranged(req, rest):
    if not rest or "/" in rest:
        return not_found()
    try:
        size = int(req.args.get("size", [str(RANGE_DEFAULT_SIZE)])[0])
    except ValueError:
        return not_found()
    if not 0 < size <= MAX_BIG_BYTES:
        return not_found()
    body = range_body(size)
    hdrs = [("Accept-Ranges", "bytes")]
    r = parse_range(req.headers.get("Range"), size)
    if r == "unsatisfiable":
        return Response(416, b"", "text/plain; charset=utf-8",
                        headers=hdrs + [("Content-Range", f"bytes */{size}")])
    if r is None:
        return Response(200, body, "text/plain; charset=utf-8", headers=hdrs)
    a, b = r
    return Response(206, body[a:b + 1], "text/plain; charset=utf-8",
                    headers=hdrs + [("Content-Range", f"bytes {a}-{b}/{size}")])


@route("/__etag/")
def etag(req, rest):
    if not rest or "/" in rest:
        return not_found()
    tag = f'"etag-{rest}"'
    hdrs = [("ETag", tag), ("Last-Modified", ETAG_LAST_MODIFIED)]
    inm = req.headers.get("If-None-Match")
    ims = req.headers.get("If-Modified-Since")
    fresh = False
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        fresh = "*" in tags or tag in tags or f"W/{tag}" in tags
    elif ims:
        try:
            since = email.utils.parsedate_to_datetime(ims)
            lm = email.utils.parsedate_to_datetime(ETAG_LAST_MODIFIED)
            fresh = since >= lm
        except (TypeError, ValueError):
            fresh = False
    if fresh:
        return Response(304, b"", None, headers=hdrs)
    return Response(200, html_page(f"etag {rest}"), HTML_TYPE, headers=hdrs)


# --------------------------------------------------------------------------
# Adversarial endpoints (hostile servers, issue 8). Each is bounded in time
# and memory here too: bodies are generated lazily (Response.raw), every
# loop has a byte or time cap, and writing stops when the client goes away.

ADV_MAX_SECONDS = 600          # longest any adversarial response lasts
ADV_MAX_BYTES = 64 << 30       # most bytes an endless stream writes
GZIP_BOMB_BYTES = 2 << 30      # decoded size of /__gzipbomb/<t> (2 GiB)
ADV_MAX_PAGE = 16 << 20        # largest generated page or header block
TRAP_LAST_YEAR = 9999


def raw_head(status_line, headers):
    """Status line and headers, as sent on the wire."""
    lines = [status_line] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_chunk(data):
    """One chunk of Transfer-Encoding: chunked."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def capped_time(gen, secs=ADV_MAX_SECONDS):
    """A (delay, bytes) generator cut after `secs` seconds of wall time."""
    deadline = time.monotonic() + secs
    for item in gen:
        if time.monotonic() > deadline:
            break
        yield item


def adv_head_html(title, extra=""):
    t = html.escape(title, quote=False)
    return (f"<!DOCTYPE html>\n<html><head><title>{t}</title>{extra}</head>"
            f"<body>\n<h1>{t}</h1>\n").encode()


NOFOLLOW_META = '<meta name="robots" content="nofollow">'
CHUNKED_HTML = [("Content-Type", HTML_TYPE), ("Transfer-Encoding", "chunked"),
                ("Connection", "close")]


def gzip_bomb_stream(token, total):
    """Chunked, Content-Encoding gzip: an HTML head (title "gzip bomb <t>")
    then spaces, `total` decoded bytes, compressed 1 MiB at a time as the
    client reads (~1 KiB on the wire per decoded MiB)."""
    yield 0, raw_head("HTTP/1.1 200 OK", CHUNKED_HTML + [("Content-Encoding", "gzip")])
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = adv_head_html(f"gzip bomb {token}")
    out, sent = co.compress(head), len(head)
    block = b" " * (1 << 20)
    while sent < total:
        n = min(len(block), total - sent)
        out += co.compress(block if n == len(block) else block[:n])
        sent += n
        if len(out) >= 4096:
            yield 0, http_chunk(out)
            out = b""
    yield 0, http_chunk(out + co.flush()) + b"0\r\n\r\n"


@route("/__gzipbomb/")
def gzip_bomb(req, rest):
    parts = _split_rest(rest, 1)
    if not parts:
        return not_found()
    return Response(200, raw=capped_time(gzip_bomb_stream(parts[0], GZIP_BOMB_BYTES)),
                    close=True)


def endless_stream(token, piece, pause):
    yield 0, raw_head("HTTP/1.1 200 OK", CHUNKED_HTML)
    yield 0, http_chunk(adv_head_html(f"endless {token}"))
    line = b"<p>an endless chunked stream: the server never sends the last chunk</p>\n"
    chunk = http_chunk((line * (piece // len(line) + 1))[:piece])
    sent = 0
    while sent < ADV_MAX_BYTES:
        yield pause, chunk
        sent += len(chunk)


@route("/__endless/")
def endless(req, rest):
    """/__endless/<t>: 16 KiB chunks as fast as the client reads, forever.
    /__endless/<t>/trickle: 256-byte chunks every 0.1 s (2.5 KB/s: above any
    low-speed limit, so only a total timeout ends it)."""
    parts = rest.split("/")
    if not parts[0] or len(parts) > 2 or (len(parts) == 2 and parts[1] != "trickle"):
        return not_found()
    piece, pause = (256, 0.1) if len(parts) == 2 else (16384, 0)
    return Response(200, raw=capped_time(endless_stream(parts[0], piece, pause)), close=True)


def slowloris_stream(token, where):
    body = html_page(f"slowloris {token}")
    head = raw_head("HTTP/1.1 200 OK", [("Content-Type", HTML_TYPE),
                                         ("Content-Length", str(len(body))),
                                         ("Connection", "close")])
    drip = head + body
    if where == "body":
        yield 0, head
        drip = body
    for i in range(min(len(drip), ADV_MAX_SECONDS)):
        yield (1.0 if i else 0), drip[i:i + 1]


@route("/__slowloris/")
def slowloris(req, rest):
    """/__slowloris/<t>/head: the whole response (status line, headers,
    body) one byte per second; /__slowloris/<t>/body: headers at once, then
    the body one byte per second."""
    parts = _split_rest(rest, 2)
    if not parts or parts[1] not in ("head", "body"):
        return not_found()
    return Response(200, raw=slowloris_stream(parts[0], parts[1]), close=True)


def huge_target(token, nbytes):
    return f"/__hugetarget/{token}/".encode() + b"a" * nbytes


@route("/__hugeurl/")
def huge_url(req, rest):
    """/__hugeurl/<t>/BYTES: a page (title "hugeurl <t> BYTES") whose first
    link is /__hugetarget/<t>/aaa... (BYTES a's), then a rel=nofollow link
    to /__hugeurl_after/<t>."""
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit() or int(parts[1]) > ADV_MAX_PAGE:
        return not_found()
    token, n = parts[0], int(parts[1])
    body = (adv_head_html(f"hugeurl {token} {n}") + b'<a href="' + huge_target(token, n)
            + b'">huge</a>\n<a rel="nofollow" href="/__hugeurl_after/'
            + token.encode() + b'">after</a>\n</body></html>\n')
    return Response(200, body, HTML_TYPE)


@route("/__hugelocation/")
def huge_location(req, rest):
    """/__hugelocation/<t>/BYTES: 302 to /__hugetarget/<t>/aaa... (BYTES)."""
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit() or int(parts[1]) > ADV_MAX_PAGE:
        return not_found()
    loc = huge_target(parts[0], int(parts[1])).decode()
    return Response(302, b"redirect\n", headers=[("Location", loc)])


@route("/__headers/")
def many_headers(req, rest):
    """/__headers/<t>/N/SIZE: 200 HTML (title "headers <t> N SIZE") with N
    extra headers X-Pad-i of SIZE bytes each."""
    parts = _split_rest(rest, 3)
    if not parts or not parts[1].isdigit() or not parts[2].isdigit() or \
            int(parts[1]) * (int(parts[2]) + 16) > ADV_MAX_PAGE:
        return not_found()
    n, size = int(parts[1]), int(parts[2])
    hdrs = [(f"X-Pad-{i}", "p" * size) for i in range(n)]
    return Response(200, html_page(f"headers {parts[0]} {n} {size}"), HTML_TYPE,
                    headers=hdrs)


def binary_html(token):
    """HTML with invalid UTF-8, NULs and binary junk (no '<', '>' or '&' in
    the junk, so the markup around it stays what it is): title
    "binary <t> ..." with bad bytes in it, robots nofollow, a link with bad
    bytes, 4 KiB of junk, then /__binary_after/<t>."""
    rnd = random.Random(token)
    junk = bytes(b for b in (rnd.getrandbits(8) for _ in range(6000))
                 if b not in b"<>&")[:4096]
    t = token.encode()
    return (b"<!DOCTYPE html>\n<html><head><title>binary " + t
            + b" \xff\xfe bad \xc3\x28 utf8 \x00 nul \xed\xa0\x80 surrogate"
            b" \xf4\x90\x80\x80 end</title>" + NOFOLLOW_META.encode()
            + b"</head><body>\n<p>\x01\x02\x1b[31m\x7f\x80\x81</p>\n"
            b'<a href="/__binary_link/' + t + b'/\xff\xfe%zz?q=\x80\x00x">bad bytes</a>\n'
            + junk + b'\n<a href="/__binary_after/' + t + b'">after the junk</a>\n'
            b"</body></html>\n")


@route("/__binary/")
def binary(req, rest):
    """/__binary/<t>/utf8: binary_html() sent as text/html; charset=utf-8;
    /__binary/<t>/none: as text/html without a charset."""
    parts = _split_rest(rest, 2)
    if not parts or parts[1] not in ("utf8", "none"):
        return not_found()
    ctype = HTML_TYPE if parts[1] == "utf8" else "text/html"
    return Response(200, binary_html(parts[0]), ctype)


def sjis_html(token):
    """Shift_JIS HTML: title "sjis <t> 日本語", robots nofollow, a paragraph
    with one invalid byte sequence (0x82 0xFF), then two links
    (/__sjis_link/<t>/1 and /2)."""
    t = token.encode()
    return (b"<!DOCTYPE html>\n<html><head><title>sjis " + t + b" "
            + "日本語".encode("shift_jis") + b"</title>" + NOFOLLOW_META.encode()
            + b"</head><body>\n<p>" + "テキスト".encode("shift_jis") + b" \x82\xff "
            + "続き".encode("shift_jis") + b"</p>\n"
            b'<a href="/__sjis_link/' + t + b'/1">1</a>\n'
            b'<a href="/__sjis_link/' + t + b'/2">2</a>\n</body></html>\n')


@route("/__sjis/")
def sjis(req, rest):
    """/__sjis/<t>: sjis_html() as text/html; charset=shift_jis."""
    parts = _split_rest(rest, 1)
    if not parts:
        return not_found()
    return Response(200, sjis_html(parts[0]), "text/html; charset=shift_jis")


@route("/__nested/")
def nested(req, rest):
    """/__nested/<t>/DEPTH: title "nested <t> DEPTH", robots nofollow, then
    DEPTH unclosed <div>s, then a link to /__nested_link/<t> at the bottom."""
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit() or int(parts[1]) * 5 > ADV_MAX_PAGE:
        return not_found()
    token, n = parts[0], int(parts[1])
    body = (adv_head_html(f"nested {token} {n}", NOFOLLOW_META) + b"<div>" * n
            + f'<a href="/__nested_link/{token}">deep</a>\n'.encode())
    return Response(200, body, HTML_TYPE)


@route("/__manylinks/")
def many_links(req, rest):
    """/__manylinks/<t>/N: title "manylinks <t> N", robots nofollow, then N
    distinct links <a href=l0>..<a href=l(N-1)> (13-17 bytes each)."""
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit() or int(parts[1]) * 20 > ADV_MAX_PAGE:
        return not_found()
    token, n = parts[0], int(parts[1])
    body = (adv_head_html(f"manylinks {token} {n}", NOFOLLOW_META)
            + b"".join(b"<a href=l%d>\n" % i for i in range(n)) + b"</body></html>\n")
    return Response(200, body, HTML_TYPE)


@route("/__bigtitle/")
def big_title(req, rest):
    """/__bigtitle/<t>/BYTES: a <title> of "bigtitle <t> " then BYTES x's."""
    parts = _split_rest(rest, 2)
    if not parts or not parts[1].isdigit() or int(parts[1]) > ADV_MAX_PAGE:
        return not_found()
    return Response(200, html_page(f"bigtitle {parts[0]} " + "x" * int(parts[1])),
                    HTML_TYPE)


@route("/__trap/")
def spider_trap(req, rest):
    """/__trap/<t>/YYYY/MM/DD: an endless calendar. Title "trap <t>
    YYYY-MM-DD"; links to the next day and to the same day of the next
    month (clamped to its length), both as /__trap/<t>/YYYY/MM/DD."""
    parts = _split_rest(rest, 4)
    if not parts or not all(p.isdigit() for p in parts[1:]):
        return not_found()
    token = parts[0]
    try:
        d = datetime.date(int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        return not_found()
    links = []
    if d < datetime.date(TRAP_LAST_YEAR, 12, 31):
        links.append(d + datetime.timedelta(days=1))
    y, m = (d.year, d.month + 1) if d.month < 12 else (d.year + 1, 1)
    if y <= TRAP_LAST_YEAR:
        links.append(datetime.date(y, m, min(d.day, calendar.monthrange(y, m)[1])))
    items = "".join(f'<a href="/__trap/{token}/{x:%Y/%m/%d}">{x:%Y-%m-%d}</a>\n'
                    for x in links)
    return Response(200, html_page(f"trap {token} {d:%Y-%m-%d}", items), HTML_TYPE)


def midbody_stream(token):
    yield 0, raw_head("HTTP/1.1 200 OK", CHUNKED_HTML)
    yield 0, http_chunk(adv_head_html(f"midbody {token}"))
    yield 0, b"1000\r\n" + b"<p>the connection closes in the middle of this chunk</p>\n" * 20


@route("/__midbody/")
def mid_body(req, rest):
    """/__midbody/<t>: chunked; a chunk announces 4096 bytes, ~1100 follow,
    then the server closes the connection."""
    parts = _split_rest(rest, 1)
    if not parts:
        return not_found()
    return Response(200, raw=midbody_stream(parts[0]), close=True)


@route("/__cl/")
def wrong_length(req, rest):
    """/__cl/<t>/long: Content-Length 10000, 2000 bytes sent, then close.
    /__cl/<t>/short: Content-Length 200 (the title is within it), 4000
    bytes sent, connection kept open (the excess looks like the start of
    the next response)."""
    parts = _split_rest(rest, 2)
    if not parts or parts[1] not in ("long", "short"):
        return not_found()
    token, kind = parts
    body = adv_head_html(f"cl {kind} {token}")
    body += b"<p>" + b"z" * 4000 + b"</p>\n"
    n, cl = (2000, 10000) if kind == "long" else (4000, 200)
    head = raw_head("HTTP/1.1 200 OK", [("Content-Type", HTML_TYPE),
                                        ("Content-Length", str(cl))]
                    + ([("Connection", "close")] if kind == "long" else []))
    return Response(200, raw=[(0, head + body[:n])], close=kind == "long")


def http10_html(token):
    """Body of /__http10/<t>: 50000 bytes, title "http10 <t>"."""
    head = adv_head_html(f"http10 {token}")
    tail = b"</body></html>\n"
    line = b"<p>" + b"h" * 60 + b"</p>\n"
    fill = 50000 - len(head) - len(tail)
    return head + (line * (fill // len(line) + 1))[:fill] + tail


@route("/__http10/")
def http10(req, rest):
    """/__http10/<t>: an HTTP/1.0 response without Content-Length: the body
    (http10_html) ends when the server closes the connection."""
    parts = _split_rest(rest, 1)
    if not parts:
        return not_found()
    head = raw_head("HTTP/1.0 200 OK", [("Content-Type", HTML_TYPE)])
    body = http10_html(parts[0])
    return Response(200, raw=[(0, head), (0.05, body[:20000]), (0.05, body[20000:])],
                    close=True)


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
    if not req.server.validators:
        return Response(200, data, content_type_for(rel))
    return conditional_static(req, fp, data, content_type_for(rel))


def conditional_static(req, fp, data, ctype):
    """--validators: ETag from the content, Last-Modified from the mtime;
    If-None-Match decides when present (RFC 9110 13.2.2), else
    If-Modified-Since."""
    tag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
    mtime = int(os.stat(fp).st_mtime)
    hdrs = [("ETag", tag), ("Last-Modified", email.utils.formatdate(mtime, usegmt=True))]
    inm = req.headers.get("If-None-Match")
    ims = req.headers.get("If-Modified-Since")
    fresh = False
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        fresh = "*" in tags or tag in tags or f"W/{tag}" in tags
    elif ims:
        try:
            fresh = email.utils.parsedate_to_datetime(ims).timestamp() >= mtime
        except (TypeError, ValueError):
            fresh = False
    if fresh:
        return Response(304, b"", None, headers=hdrs)
    return Response(200, data, ctype, headers=hdrs)


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


# (log field, request header) recorded when the request has the header
LOGGED_HEADERS = (("ae", "Accept-Encoding"), ("range", "Range"),
                  ("inm", "If-None-Match"), ("ims", "If-Modified-Since"))

# Kernel receive timestamps (Linux SO_TIMESTAMPNS, same value on every
# asm-generic architecture; Python does not export the constant).
SO_TIMESTAMPNS = 35


def enable_rx_timestamps(sock):
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return True
    except OSError:
        return False


def rx_timestamp(ancdata):
    """Wall-clock seconds from an SCM_TIMESTAMPNS control message, or None."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec + nsec / 1e9
    return None


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
    # Unbuffered reads: the next request stays in the kernel until it is
    # parsed, so its arrival time can be peeked first (see t_start).
    rbufsize = 0

    def setup(self):
        super().setup()
        self.conn_id = next_conn_id()
        self.t_open = time.time()
        self.n_requests = 0
        self.t_arrival = None
        self.rx_timestamps = enable_rx_timestamps(self.connection)

    def handle_one_request(self):
        """Peek at the next request's kernel receive timestamp (when the
        first byte reached the socket): thread scheduling in this process
        cannot then skew the politeness measurements."""
        self.t_arrival = None
        if self.rx_timestamps:
            try:
                data, anc, _, _ = self.connection.recvmsg(
                    1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
            except OSError:     # idle timeout, reset
                self.close_connection = True
                return
            if not data:        # peer closed
                self.close_connection = True
                return
            self.t_arrival = rx_timestamp(anc)
        super().handle_one_request()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.connlog is not None:
                self.server.connlog.write({
                    "host": self.server.label, "conn": self.conn_id,
                    "peer_port": self.client_address[1],
                    "t_open": self.t_open, "t_close": time.time(),
                    "requests": self.n_requests})

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
        now = time.time()
        t_start = self.t_arrival if self.t_arrival and \
            now - 600 < self.t_arrival <= now + 0.001 else now
        self.n_requests += 1
        status, nbytes, error, stalled = 0, 0, None, False
        try:
            srv = self.server
            if srv.slow > 0:
                srv.stop_event.wait(srv.slow)
            if not allowed:
                resp = Response(405, b"method not allowed\n",
                                headers=[("Allow", "GET, HEAD")])
            else:
                try:
                    resp = self.robots_override()
                    if resp is None:
                        resp = dispatch(Request(self, method))
                except Exception as e:  # handler bug: report, keep serving
                    resp = Response(500, f"handler error: {e!r}\n".encode())
            status = resp.status
            stalled = resp.stall
            self.body_sent = 0
            self.t_written = None
            nbytes = self.write_response(method, resp)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
            error = type(e).__name__
            nbytes = getattr(self, "body_sent", 0)
            self.close_connection = True
        finally:
            rec = {"host": self.server.label, "method": method,
                   "path": self.path, "status": status,
                   "t_start": t_start, "t_end": self.t_written or time.time(),
                   "conn": self.conn_id, "peer_port": self.client_address[1],
                   "bytes": nbytes, "ua": self.headers.get("User-Agent", "")}
            for field, header in LOGGED_HEADERS:
                v = self.headers.get(header)
                if v is not None:
                    rec[field] = v
            if error:
                rec["error"] = error
            if stalled:
                rec["stalled"] = True
            self.server.reqlog.write(rec)

    def robots_override(self):
        """--robots-status: /robots.txt answers the configured status (the
        first N times, or always)."""
        srv = self.server
        if srv.robots_status is None or urlsplit(self.path).path != "/robots.txt":
            return None
        code, limit = srv.robots_status
        with srv.state_lock:
            n = srv.state.get("robots-override", 0)
            if limit is not None and n >= limit:
                return None
            srv.state["robots-override"] = n + 1
        return Response(code, f"robots.txt: status {code} (test mode)\n".encode())

    def wait_client_gone(self):
        """Until the peer closes or the server stops (input is discarded)."""
        sock = self.connection
        while not self.server.stop_event.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.1)
                if r and not sock.recv(65536, socket.MSG_DONTWAIT):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return

    def write_response(self, method, resp):
        if resp.stall:
            self.wait_client_gone()
            self.close_connection = True
            return 0
        if resp.raw is not None:
            return self.write_raw(resp)
        self.send_response(resp.status)
        names = {k.lower() for k, _ in resp.headers}
        for k, v in resp.headers:
            self.send_header(k, v)
        no_body = resp.status < 200 or resp.status in (204, 304)
        if no_body:
            method = "HEAD"     # headers only, whatever the method
        elif "content-length" not in names:
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
            self.t_written = time.time()
            return len(resp.body)
        self.end_headers()
        n = 0
        for delay, data in resp.chunks:
            if delay > 0 and self.server.stop_event.wait(delay):
                self.close_connection = True
                break
            self.wfile.write(data)
            n += len(data)
            self.body_sent = n
        self.wfile.flush()
        return n


    def write_raw(self, resp):
        """Response.raw: bytes as given (status line and headers included)."""
        n = 0
        self.close_connection = True
        try:
            for delay, data in resp.raw:
                if delay > 0:
                    if self.server.stop_event.wait(delay):
                        break
                elif self.server.stop_event.is_set():
                    break
                if data:
                    self.wfile.write(data)
                    n += len(data)
                    self.body_sent = n
        finally:
            close = getattr(resp.raw, "close", None)
            if close:
                close()     # a generator: release what it holds now
        self.t_written = time.time()
        self.close_connection = resp.close or self.server.stop_event.is_set()
        return n


class SiteHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, addr, root, reqlog, stop_event, verbose=False,
                 connlog=None):
        super().__init__(addr, Handler)
        # Set on the listener: accepted sockets inherit it, and packets are
        # stamped on arrival even before the handler thread runs.
        enable_rx_timestamps(self.socket)
        host, port = self.server_address[:2]
        self.label = f"{host}:{port}"
        self.site_dir = os.path.join(root, host_dir_name(self.label))
        self.reqlog = reqlog
        self.stop_event = stop_event
        self.verbose = verbose
        self.state = {}
        self.state_lock = threading.Lock()
        self.connlog = connlog
        self.slow = 0.0            # --slow: seconds added to every response
        self.robots_status = None  # --robots-status: (code, limit or None)
        self.validators = False    # --validators: ETag/Last-Modified, 304


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


def parse_mode(s, kind):
    """'HOST:PORT=VALUE' -> ('HOST:PORT', VALUE) for --slow / --robots-status."""
    where, sep, value = s.rpartition("=")
    if not sep or not where:
        raise argparse.ArgumentTypeError(f"bad {kind} {s!r}, want HOST:PORT=VALUE")
    parse_listen(where)
    if kind == "--slow":
        try:
            secs = float(value)
        except ValueError:
            secs = -1
        if not 0 <= secs <= MAX_SLOW_SECONDS:
            raise argparse.ArgumentTypeError(f"bad {kind} seconds {value!r}")
        return where, secs
    code, _, limit = value.partition("x")
    if not code.isdigit() or not 100 <= int(code) <= 599 or \
            (limit and not limit.isdigit()):
        raise argparse.ArgumentTypeError(f"bad {kind} {value!r}, want CODE or CODExN")
    return where, (int(code), int(limit) if limit else None)


def listener_for(where, specs, servers, flag):
    """The one server whose --listen argument or bound address is `where`."""
    hits = [srv for spec, srv in zip(specs, servers)
            if where in (spec, srv.label)]
    if len(hits) != 1:
        raise ValueError(f"{flag} {where}: matches {len(hits)} listeners "
                         f"(want exactly 1 of {specs})")
    return hits[0]


def main(argv=None):
    global BROTLI_CLI
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--listen", action="append", required=True,
                    type=parse_listen)
    ap.add_argument("--log", default=None, help="JSON-lines request log")
    ap.add_argument("--conn-log", default=None,
                    help="JSON-lines log of connections (at close)")
    ap.add_argument("--port-file", default=None)
    ap.add_argument("--slow", action="append", default=[],
                    type=lambda v: parse_mode(v, "--slow"),
                    help="HOST:PORT=SECS: delay every response of a listener")
    ap.add_argument("--robots-status", action="append", default=[],
                    type=lambda v: parse_mode(v, "--robots-status"),
                    help="HOST:PORT=CODE[xN]: /robots.txt answers CODE "
                    "(the first N times)")
    ap.add_argument("--validators", action="append", default=[],
                    help="HOST:PORT: static files get ETag/Last-Modified and 304s")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    BROTLI_CLI = shutil.which("brotli")
    stop = threading.Event()
    reqlog = RequestLog(args.log)
    connlog = RequestLog(args.conn_log) if args.conn_log else None
    servers = []
    try:
        for host, port in args.listen:
            servers.append(SiteHTTPServer((host, port), os.path.abspath(args.root),
                                          reqlog, stop, args.verbose, connlog))
    except OSError as e:
        print(f"server.py: cannot listen: {e}", file=sys.stderr)
        return 2
    specs = [f"{h}:{p}" for h, p in args.listen]
    try:
        for where, secs in args.slow:
            listener_for(where, specs, servers, "--slow").slow = secs
        for where, mode in args.robots_status:
            listener_for(where, specs, servers, "--robots-status").robots_status = mode
        for where in args.validators:
            listener_for(where, specs, servers, "--validators").validators = True
    except ValueError as e:
        print(f"server.py: {e}", file=sys.stderr)
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
    print(f"server.py: brotli encoder: "
          f"{BROTLI_CLI or 'built-in (no brotli CLI on PATH)'}", flush=True)

    while not stop.wait(1.0):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    reqlog.close()
    if connlog:
        connlog.close()
    print("server.py: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
