#!/usr/bin/env python3
"""WARC output of a real crawl, read back by an independent reader.

Generates a small site (tests/site/gen_site.py) on one host plus a page of
special routes (gzip / deflate / brotli bodies, a body over the size cap, a
redirect chain, 204 and 410 answers, a stalled request that times out, a
body refused by the content-type list), serves it with tests/site/server.py
and runs
  ./run.sh --allow-private --delay 0 --warc --consumers 2 --out OUT SEEDS...
with TRAWLER_MAX_BODY (a truncated body), TRAWLER_WARC_MAX_BYTES (file
rotation), TRAWLER_TIMEOUT and TRAWLER_MAX_ATTEMPTS (a quick timeout) set.
Then OUT/warc/*.warc.gz is read with a WARC reader written here from the WARC/1.1 spec (zlib, one gzip member at a time; hashlib +
base32 for the digests; http.client to re-parse the HTTP messages), none
of the writer's code, and checked against pages.jsonl and the site files:

- every gzip member holds exactly one record; each file starts with a
  warcinfo record named after the file; every record's Content-Length is
  exact and its WARC-Block-Digest verifies;
- every page of pages.jsonl with an HTTP response has its response record
  (same WARC-Target-URI, one per line; none for transport failures), the
  status line matches, WARC-Payload-Digest verifies, WARC-Date is the
  page's fetched_at_ms;
- request and response are linked both ways by WARC-Concurrent-To and
  carry the request line / Host of the final URL (HEAD for HEAD checks);
- stored bodies are the bytes served: site files byte for byte, encoded
  pages decoded (no Content-Encoding left, Content-Length = stored
  length), the capped body cut and marked WARC-Truncated: length.
When the `warcio` module is importable (Debian bookworm has no
python3-warcio; a pip-installed one works), its ArchiveIterator must read
the same records with their digests passing.

Run: python3 tests/integration/test_warc.py   (exit 0 = pass)
Env: TRAWLER_KEEP_TMP=1 keeps the temp dir; TRAWLER_BROKERS /
TRAWLER_REDIS are passed through to run.sh.
"""

import base64
import collections
import datetime
import hashlib
import http
import http.client
import io
import os
import re
import sys
import traceback
import zlib
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from sitecommon import url_path_to_relfile  # noqa: E402

try:  # the test server's body generators: the exact bytes it sends
    import server as site_server  # noqa: E402
except Exception:  # pragma: no cover - only the generic checks then
    site_server = None

TIMEOUT = 300
PAGES = 40
MAX_BODY = 100000          # TRAWLER_MAX_BODY: /__big/200000 is cut here
WARC_MAX_BYTES = 40000     # TRAWLER_WARC_MAX_BYTES: several files
FILE_RE = re.compile(r"^trawler-\d{14}-\d+-\d+\.warc\.gz$")
ID_RE = re.compile(r"^<urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                   r"[89ab][0-9a-f]{3}-[0-9a-f]{12}>$")
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
ENCODED = {"gzip": "w-gz", "deflate": "w-df", "brotli": "w-br"}


# --------------------------------------------------------------------------
# The independent reader

class Record:
    def __init__(self, file, member, offset, headers, block):
        self.file, self.member, self.offset = file, member, offset
        self.headers = headers        # [(name, value)] in order
        self.block = block

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def type(self):
        return self.get("WARC-Type")

    def http_parts(self):
        """(head bytes incl. the blank line, payload bytes) of an
        application/http block."""
        i = self.block.find(b"\r\n\r\n")
        if i < 0:
            return self.block, b""
        return self.block[:i + 4], self.block[i + 4:]

    def where(self):
        return f"{self.file} member {self.member} (offset {self.offset})"


def sha1_label(data):
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def read_members(path):
    """-> [(offset, decompressed bytes)], one per gzip member; raises
    ValueError for trailing garbage or a cut member."""
    data = memoryview(Path(path).read_bytes())
    pos, out = 0, []
    while pos < len(data):
        if bytes(data[pos:pos + 3]) != b"\x1f\x8b\x08":
            raise ValueError(f"offset {pos}: not a gzip member")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = d.decompress(data[pos:]) + d.flush()
        if not d.eof:
            raise ValueError(f"offset {pos}: gzip member cut short")
        out.append((pos, raw))
        pos = len(data) - len(d.unused_data)
    return out


def parse_record(raw, file, member, offset):
    """One WARC record that must fill the member exactly."""
    end = raw.find(b"\r\n\r\n")
    if not raw.startswith(b"WARC/1.1\r\n") or end < 0:
        raise ValueError("does not start with a WARC/1.1 header block")
    headers = []
    for line in raw[10:end].split(b"\r\n"):
        name, sep, value = line.decode("utf-8").partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    rec = Record(file, member, offset, headers, b"")
    length = int(rec.get("Content-Length", "-1"))
    start = end + 4
    if length < 0 or raw[start + length:] != b"\r\n\r\n":
        raise ValueError(f"Content-Length {length} does not match the record "
                         f"({len(raw) - start - 4} block bytes before CRLF CRLF "
                         f"and the member's end)")
    rec.block = raw[start:start + length]
    return rec


def read_warc_dir(d):
    """-> (files, records, problems)"""
    files = sorted(p for p in Path(d).iterdir())
    records, problems = [], []
    for p in files:
        try:
            members = read_members(p)
        except (ValueError, zlib.error) as e:
            problems.append(f"{p.name}: {e}")
            continue
        for i, (off, raw) in enumerate(members):
            try:
                records.append(parse_record(raw, p.name, i, off))
            except (ValueError, UnicodeDecodeError) as e:
                problems.append(f"{p.name} member {i} (offset {off}): {e}")
    return files, records, problems


class _Sock:
    def __init__(self, data):
        self.data = data

    def makefile(self, *a, **k):
        return io.BytesIO(self.data)


def http_reparse(block, method):
    """Parse a response block with http.client: -> (status, reason,
    headers, body) or raises."""
    r = http.client.HTTPResponse(_Sock(block), method=method)
    r.begin()
    body = r.read()
    return r.status, r.reason, r.getheaders(), body


def iso_ms(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --------------------------------------------------------------------------
# Checks

def check_structure(chk, files, records, problems, warc_dir):
    chk.check(not problems, "every gzip member holds exactly one WARC/1.1 "
              "record with an exact Content-Length", lib.show_list(problems))
    bad_names = [p.name for p in files if not FILE_RE.match(p.name)]
    chk.check(files and not bad_names,
              f"{len(files)} file(s) in {warc_dir}, named "
              "trawler-YYYYmmddHHMMSS-PID-SERIAL.warc.gz", lib.show_list(bad_names))
    chk.check(len(files) >= 2, "files rotate at TRAWLER_WARC_MAX_BYTES "
              f"({WARC_MAX_BYTES}): more than one file",
              f"{len(files)} file(s): {[p.name for p in files]}")
    members = collections.Counter(r.file for r in records)
    chk.check(all(members[p.name] >= 3 for p in files),
              "records are separate gzip members (>= 3 per file)",
              str(dict(members)))

    bad = []
    by_file = collections.defaultdict(list)
    for r in records:
        by_file[r.file].append(r)
    for f, recs in by_file.items():
        first = recs[0]
        if first.type != "warcinfo" or first.get("WARC-Filename") != f:
            bad.append(f"{f}: first record is {first.type} "
                       f"(WARC-Filename {first.get('WARC-Filename')})")
            continue
        if first.get("Content-Type") != "application/warc-fields" or \
                b"format: WARC File Format 1.1\r\n" not in first.block:
            bad.append(f"{f}: warcinfo block/content type: {first.block[:200]!r}")
        info_id = first.get("WARC-Record-ID")
        for r in recs[1:]:
            if r.type not in ("request", "response"):
                bad.append(f"{r.where()}: unexpected type {r.type}")
            if r.get("WARC-Warcinfo-ID") != info_id:
                bad.append(f"{r.where()}: WARC-Warcinfo-ID "
                           f"{r.get('WARC-Warcinfo-ID')} is not {info_id}")
    chk.check(not bad, "each file opens with its warcinfo record; its "
              "records point to it", lib.show_list(bad))

    bad = []
    ids = collections.Counter(r.get("WARC-Record-ID") for r in records)
    for r in records:
        rid = r.get("WARC-Record-ID") or ""
        if not ID_RE.match(rid) or ids[rid] != 1:
            bad.append(f"{r.where()}: WARC-Record-ID {rid!r} (seen {ids[rid]}x)")
        if not DATE_RE.match(r.get("WARC-Date") or ""):
            bad.append(f"{r.where()}: WARC-Date {r.get('WARC-Date')!r}")
        for name in ("WARC-Type", "WARC-Record-ID", "WARC-Date", "Content-Length"):
            if len(r.all(name)) != 1:
                bad.append(f"{r.where()}: {len(r.all(name))} x {name}")
    chk.check(not bad, "mandatory headers present once; record IDs are unique "
              "UUIDv4 URNs; dates ISO 8601 UTC", lib.show_list(bad))

    bad = [f"{r.where()}: WARC-Block-Digest {r.get('WARC-Block-Digest')} != "
           f"{sha1_label(r.block)}" for r in records
           if r.get("WARC-Block-Digest") != sha1_label(r.block)]
    chk.check(not bad, f"WARC-Block-Digest verifies on all {len(records)} records",
              lib.show_list(bad))


def check_against_pages(chk, records, pages, site_root, hostport):
    responses = [r for r in records if r.type == "response"]
    requests = {r.get("WARC-Record-ID"): r for r in records if r.type == "request"}
    resp_by_uri = collections.defaultdict(list)
    for r in responses:
        resp_by_uri[r.get("WARC-Target-URI")].append(r)
    with_http = [p for p in pages if p.get("status", 0) > 0]
    failed = [p for p in pages if not p.get("status")]
    chk.info(f"pages.jsonl: {len(pages)} lines, {len(with_http)} with an HTTP "
             f"response, {len(failed)} without; WARC: {len(responses)} responses, "
             f"{len(requests)} requests")

    # one response per page with an HTTP response, no other
    want = collections.Counter(p["url"] for p in with_http)
    got = collections.Counter({u: len(v) for u, v in resp_by_uri.items()})
    diff = [f"{u}: {got[u]} response record(s), {want[u]} pages.jsonl line(s)"
            for u in sorted(set(want) | set(got)) if want[u] != got[u]]
    ok2xx = [p for p in with_http if 200 <= p["status"] < 300]
    chk.check(not diff and ok2xx and len(responses) == len(with_http),
              f"every page with an HTTP response ({len(ok2xx)} of them 2xx) has "
              "exactly one response record with its URL as WARC-Target-URI",
              lib.show_list(diff))
    chk.check(not any(resp_by_uri.get(p["url"]) for p in failed
                      if p["url"] not in want),
              "transport failures have no response record",
              lib.show_list(p["url"] for p in failed))
    chk.check(len(requests) == len(responses),
              "one request record per response record",
              f"{len(requests)} requests, {len(responses)} responses")

    bad_link, bad_status, bad_digest, bad_date, bad_req, bad_http, bad_trunc = (
        [] for _ in range(7))
    seen_pages = collections.defaultdict(int)
    for r in responses:
        uri = r.get("WARC-Target-URI")
        cands = [p for p in with_http if p["url"] == uri]
        if not cands:
            continue
        page = cands[min(seen_pages[uri], len(cands) - 1)]
        seen_pages[uri] += 1
        method = page.get("method", "GET")
        # linking both ways
        req = requests.get(r.get("WARC-Concurrent-To"))
        if not req or req.get("WARC-Concurrent-To") != r.get("WARC-Record-ID") or \
                req.get("WARC-Target-URI") != uri or req.get("WARC-Date") != r.get("WARC-Date"):
            bad_link.append(f"{uri}: response {r.get('WARC-Record-ID')} -> "
                            f"{r.get('WARC-Concurrent-To')} -> "
                            f"{req.get('WARC-Concurrent-To') if req else '(no such request)'}")
        if r.get("Content-Type") != "application/http; msgtype=response" or \
                (req and req.get("Content-Type") != "application/http; msgtype=request"):
            bad_link.append(f"{uri}: Content-Type {r.get('Content-Type')} / "
                            f"{req.get('Content-Type') if req else None}")
        # status line
        head, payload = r.http_parts()
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        want_line = (f"HTTP/{page.get('http_version') or '1.1'} {page['status']} "
                     f"{http.HTTPStatus(page['status']).phrase}")
        if status_line != want_line:
            bad_status.append(f"{uri}: {status_line!r}, expected {want_line!r}")
        # digests
        if r.get("WARC-Payload-Digest") != sha1_label(payload):
            bad_digest.append(f"{uri}: WARC-Payload-Digest {r.get('WARC-Payload-Digest')}"
                              f" != sha1 of the {len(payload)} stored body bytes "
                              f"{sha1_label(payload)}")
        if len(payload) != page.get("bytes", 0):
            bad_digest.append(f"{uri}: {len(payload)} body bytes, pages.jsonl says "
                              f"{page.get('bytes', 0)}")
        if r.get("WARC-Date") != iso_ms(page["fetched_at_ms"]):
            bad_date.append(f"{uri}: WARC-Date {r.get('WARC-Date')}, fetched_at_ms "
                            f"{page['fetched_at_ms']} = {iso_ms(page['fetched_at_ms'])}")
        want_trunc = ("length" if page.get("truncated") else
                      "unspecified" if page.get("error") else None)
        if r.get("WARC-Truncated") != want_trunc:
            bad_trunc.append(f"{uri}: WARC-Truncated {r.get('WARC-Truncated')}, "
                             f"expected {want_trunc} ({lib.short_record(page)})")
        if r.get("WARC-IP-Address") != hostport.rpartition(":")[0]:
            bad_date.append(f"{uri}: WARC-IP-Address {r.get('WARC-IP-Address')}")
        # request block
        if req:
            s = urlsplit(uri)
            target = (s.path or "/") + (f"?{s.query}" if s.query else "")
            want_req = f"{method} {target} HTTP/1.1\r\nHost: {s.netloc}\r\n\r\n".encode()
            if req.block != want_req:
                bad_req.append(f"{uri}: {req.block!r}, expected {want_req!r}")
        # the HTTP message parses as such and frames its body
        try:
            st, _, hdrs, body = http_reparse(r.block, method)
            names = {k.lower() for k, _ in hdrs}
            if st != page["status"] or body != (b"" if method == "HEAD" else payload):
                bad_http.append(f"{uri}: http.client read status {st}, "
                                f"{len(body)} body bytes (stored {len(payload)})")
            if method != "HEAD" and page["status"] not in (204, 304) and (
                    "transfer-encoding" in names or "content-encoding" in names or
                    dict((k.lower(), v) for k, v in hdrs).get("content-length")
                    != str(len(payload))):
                bad_http.append(f"{uri}: headers {hdrs}")
        except Exception as e:
            bad_http.append(f"{uri}: http.client cannot parse the block: {e}")
    chk.check(not bad_link, "request and response records are linked both ways "
              "by WARC-Concurrent-To (same URI and date)", lib.show_list(bad_link))
    chk.check(not bad_status, "HTTP status lines match pages.jsonl",
              lib.show_list(bad_status))
    chk.check(not bad_digest, f"WARC-Payload-Digest verifies on all {len(responses)} "
              "responses; stored body length = pages.jsonl bytes",
              lib.show_list(bad_digest))
    chk.check(not bad_date, "WARC-Date = fetched_at_ms; WARC-IP-Address = the "
              "server's address", lib.show_list(bad_date))
    chk.check(not bad_trunc, "WARC-Truncated: length exactly on bodies cut at the "
              "size cap, unspecified on responses with a fetch error",
              lib.show_list(bad_trunc))
    chk.check(not bad_req, "request blocks: '<GET|HEAD> <path?query> HTTP/1.1' + "
              "Host of the final URL", lib.show_list(bad_req))
    chk.check(not bad_http, "response blocks re-parse with http.client: body "
              "framed by Content-Length, no Content-/Transfer-Encoding left",
              lib.show_list(bad_http))

    # bodies are the bytes the server sent
    bad, n_files, n_head = [], 0, 0
    for page in ok2xx:
        uri = page["url"]
        s = urlsplit(uri)
        if s.path.startswith("/__") or page.get("truncated") or page.get("error") or \
                not resp_by_uri.get(uri):
            continue
        payload = resp_by_uri[uri][0].http_parts()[1]
        if page.get("method") == "HEAD":
            n_head += 1
            if payload:
                bad.append(f"{uri}: HEAD response with {len(payload)} body bytes")
            continue
        rel = url_path_to_relfile(s.path)
        fp = lib.host_root(site_root, s.netloc) / rel if rel else None
        if not fp or not fp.is_file():
            bad.append(f"{uri}: no site file {fp}")
        elif fp.read_bytes() != payload:
            bad.append(f"{uri}: stored body differs from {fp}")
        else:
            n_files += 1
    chk.check(not bad and n_files >= PAGES // 2 and n_head >= 1,
              f"stored bodies equal the site files ({n_files} GET pages), HEAD "
              f"checks have no body ({n_head})", lib.show_list(bad))
    return resp_by_uri


def check_special(chk, resp_by_uri, pages, hostport):
    base = f"http://{hostport}"
    by_url = {p["url"]: p for p in pages}

    # decoded bodies
    bad = []
    for kind, name in ENCODED.items():
        uri = f"{base}/__{kind}/{name}"
        recs = resp_by_uri.get(uri, [])
        if len(recs) != 1:
            bad.append(f"{uri}: {len(recs)} response records")
            continue
        head, payload = recs[0].http_parts()
        if re.search(rb"(?im)^content-encoding:", head):
            bad.append(f"{uri}: Content-Encoding kept: {head!r}")
        if site_server is not None:
            want = site_server.encoded_page_html(kind, name)
            want = want.encode() if isinstance(want, str) else want
            if payload != want:
                bad.append(f"{uri}: stored body is not the decoded page "
                           f"({len(payload)} vs {len(want)} bytes)")
        elif f"<title>{kind} {name}</title>".encode() not in payload:
            bad.append(f"{uri}: no decoded title in {payload[:120]!r}")
    chk.check(not bad, "gzip/deflate/br responses are stored decoded, without "
              "Content-Encoding", lib.show_list(bad))

    # the body cut at --max-body
    uri = f"{base}/__big/200000"
    recs = resp_by_uri.get(uri, [])
    page = by_url.get(uri, {})
    detail = f"records {len(recs)}, page {lib.short_record(page) if page else None}"
    ok = len(recs) == 1 and page.get("truncated") is True
    if ok:
        payload = recs[0].http_parts()[1]
        ok = recs[0].get("WARC-Truncated") == "length" and len(payload) == MAX_BODY
        if ok and site_server is not None:
            ok = payload == site_server.big_body(200000)[:MAX_BODY]
        detail += (f", WARC-Truncated {recs[0].get('WARC-Truncated')}, "
                   f"{len(payload)} body bytes")
    chk.check(ok, f"a body cut at TRAWLER_MAX_BODY={MAX_BODY} is stored cut, with "
              "WARC-Truncated: length", detail)

    # redirect chain: the final URL is archived, under its own URI
    uri = f"{base}/__chain/w/0"
    p = by_url.get(uri, {})
    chk.check(len(resp_by_uri.get(uri, [])) == 1 and p.get("redirects") == 2 and
              not resp_by_uri.get(f"{base}/__chain/w/2"),
              "a redirected fetch is archived under its final URL",
              f"page {lib.short_record(p) if p else None}")

    # answers without a body, and an error status
    bad = []
    for path, status in (("/__status/204/w", 204), ("/__status/410/w", 410)):
        recs = resp_by_uri.get(base + path, [])
        if len(recs) != 1 or not recs[0].block.startswith(
                f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n".encode()):
            bad.append(f"{path}: {[r.block[:80] for r in recs]}")
    chk.check(not bad, "204 and 410 answers are archived with their status",
              lib.show_list(bad))

    # a timeout (no HTTP response) and a body refused by --content-types
    p = by_url.get(f"{base}/__stall/w", {})
    chk.check(p.get("status") == 0 and p.get("error") == "timeout" and
              not resp_by_uri.get(f"{base}/__stall/w"),
              "a fetch that timed out (status 0) has no WARC record",
              f"page {lib.short_record(p) if p else None}")
    uri = f"{base}/blob.dat"
    p, recs = by_url.get(uri, {}), resp_by_uri.get(uri, [])
    chk.check(p.get("error") == "content_type" and len(recs) == 1 and
              recs[0].get("WARC-Truncated") == "unspecified" and
              recs[0].http_parts()[1] == b"" and
              b"\r\nContent-Length: 0\r\n" in recs[0].http_parts()[0],
              "a body refused by the content-type list: response archived without "
              "body, WARC-Truncated: unspecified",
              f"page {lib.short_record(p) if p else None}, "
              f"records {[r.block[:300] for r in recs]}")


def check_with_warcio(chk, files, records):
    try:
        from warcio.archiveiterator import ArchiveIterator
    except ImportError:
        chk.info("warcio not importable (Debian bookworm has no python3-warcio): "
                 "skipping the warcio cross-check")
        return
    bad, n = [], 0
    mine = {(r.file, r.get("WARC-Record-ID")): r for r in records}
    for p in files:
        with open(p, "rb") as fh:
            it = ArchiveIterator(fh, check_digests=True)
            for rec in it:
                n += 1
                rid = rec.rec_headers.get_header("WARC-Record-ID")
                ref = mine.get((p.name, rid))
                if ref is None or rec.rec_type != ref.type:
                    bad.append(f"{p.name}: warcio record {rid} ({rec.rec_type}) unknown")
                    continue
                if rec.rec_type == "response":
                    if rec.http_headers.get_statuscode() is None:
                        bad.append(f"{p.name}: {rid}: warcio parsed no status")
                    body = rec.content_stream().read()
                    if body != ref.http_parts()[1]:
                        bad.append(f"{p.name}: {rid}: warcio payload differs")
                else:
                    rec.content_stream().read()
                checker = getattr(rec, "digest_checker", None)
                if checker is not None and not checker.passed:
                    bad.append(f"{p.name}: {rid}: warcio digest check: "
                               f"{getattr(checker, 'problems', '?')}")
    chk.check(not bad and n == len(records),
              f"warcio's ArchiveIterator reads the same {n} records, digests pass",
              lib.show_list(bad) + f"\nwarcio {n} records, ours {len(records)}")


# --------------------------------------------------------------------------

def main():
    chk = lib.Checker("integration.test_warc")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-warc-")
    chk.info(f"temp dir {tmp}")
    site = tmp / "site"
    srv = lib.SiteServer(site, ["127.0.0.2:0"], tmp / "requests.jsonl")
    res = None
    try:
        (hp,) = srv.start()
        m = lib.generate_site(site, [hp], PAGES, seed=4242)
        extras = [f"/__{k}/{n}" for k, n in ENCODED.items()] + [
            "/__big/200000", "/__chain/w/2", "/__status/204/w", "/__status/410/w",
            "/__stall/w", "/blob.dat"]
        lib.write_site_file(site, hp, "blob.dat", b"\x00\x01binary" * 100)
        lib.write_site_file(site, hp, "warc-extras.html",
                            lib.html_doc("warc extras", extras))
        outdir = tmp / "out"
        args = ["--allow-private", "--delay", "0", "--warc", "--consumers", "2",
                "--out", str(outdir), *m["seeds"], f"http://{hp}/warc-extras.html"]
        chk.info("running ./run.sh " + " ".join(args))
        res = lib.run_trawler(args, timeout=TIMEOUT, echo=True, env_extra={
            "TRAWLER_MAX_BODY": str(MAX_BODY),
            "TRAWLER_WARC_MAX_BYTES": str(WARC_MAX_BYTES),
            "TRAWLER_TIMEOUT": "3", "TRAWLER_MAX_ATTEMPTS": "1"})
    except Exception:
        chk.check(False, "test setup (server, site generator, run.sh start)",
                  traceback.format_exc())
    finally:
        srv.stop()
    if res is None:
        rc = chk.summary()
        lib.cleanup_tmpdir(tmp, False)
        return rc
    ok = chk.check(not res.timed_out and res.rc == 0,
                   f"run.sh --warc exits 0 within {TIMEOUT}s", res.describe())
    warc_dir = outdir / "warc"
    pages_path = outdir / "pages.jsonl"
    if ok and chk.check(warc_dir.is_dir() and pages_path.is_file(),
                        f"{warc_dir} and {pages_path} exist"):
        try:
            pages, errors = lib.read_jsonl(pages_path)
            chk.check(not errors, "pages.jsonl parses", lib.show_list(errors))
            files, records, problems = read_warc_dir(warc_dir)
            check_structure(chk, files, records, problems, warc_dir)
            resp = check_against_pages(chk, records, pages, site, hp)
            check_special(chk, resp, pages, hp)
            check_with_warcio(chk, files, records)
        except Exception:
            chk.check(False, "reading the WARC files back", traceback.format_exc())
    left = lib.leftover_processes(res.marker, grace=15)
    chk.check(not left, "every process run.sh started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
