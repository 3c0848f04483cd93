#!/usr/bin/env python3
"""Self-test of the test harness (tests/site): generator and server.

No crawler needed. Checks that gen_site.py is deterministic and produces
every feature the crawl tests rely on, that a crawl over real HTTP (here in
Python, following the manifest rules) finds exactly the manifest's reachable
set, and that server.py does keep-alive, HEAD, Content-Length, the special
endpoints, the request log and a clean SIGTERM shutdown.

Run: python3 tests/integration/test_site_server.py   (exit 0 = pass)
"""

import collections
import concurrent.futures
import filecmp
import http.client
import os
import socket
import sys
import time
import traceback
from urllib.parse import urljoin, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from sitecommon import canonical_url, media_type, url_hostport  # noqa: E402

sys.path.insert(0, str(lib.SITE_DIR))
from gen_site import norm_title, parse_html  # noqa: E402


def addr(hp):
    host, port = hp.rsplit(":", 1)
    return host, int(port)


def trees_equal(a, b):
    cmp = filecmp.dircmp(a, b)
    stack = [cmp]
    while stack:
        c = stack.pop()
        if c.left_only or c.right_only or c.diff_files or c.funny_files:
            return False
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files,
                                               shallow=False)
        if mismatch or errors:
            return False
        stack.extend(c.subdirs.values())
    return True


def check_determinism(chk, tmp):
    hosts = ["127.0.0.2:1111", "127.0.0.3:2222"]
    a = lib.generate_site(tmp / "det-a", hosts, 60, seed=5, offscope=["127.0.0.4:3333"])
    b = lib.generate_site(tmp / "det-b", hosts, 60, seed=5, offscope=["127.0.0.4:3333"])
    c = lib.generate_site(tmp / "det-c", hosts, 60, seed=6, offscope=["127.0.0.4:3333"])
    chk.check(a == b and trees_equal(tmp / "det-a", tmp / "det-b"),
              "generator: same arguments -> identical files and manifest")
    chk.check(not trees_equal(tmp / "det-a", tmp / "det-c") and a != c,
              "generator: another seed -> another site")


def check_features(chk, m):
    h = m["hosts"][0]
    r = m["reachable"]
    u = lambda p: f"http://{h}{p}"  # noqa: E731
    want_in = {
        "root seed": u("/"),
        "/index.html distinct from /": u("/index.html"),
        "query variant id=1": u("/special/item.html?id=1"),
        "query variant id=2": u("/special/item.html?id=2"),
        "entity-decoded query": u("/special/item.html?id=3&v=a"),
        "query-only relative ref": u("/special/item.html?id=9"),
        "no-query variant": u("/special/item.html"),
        "404 page": u("/missing/1.html"),
        "404 pdf": u("/files/missing.pdf"),
        "404 directory": u("/special/nothing-here/"),
        "pdf": u("/files/doc.pdf"),
        "png with query": u("/files/image.png?size=2"),
        "txt": u("/files/notes.txt"),
        "percent-encoded name": u("/special/with%20space.html"),
        "malformed page": u("/special/malformed.html"),
        "directory index": u("/d/01/"),
    }
    missing = [f"{k}: {v}" for k, v in want_in.items() if v not in r]
    chk.check(not missing, "manifest: feature URLs reachable",
              lib.show_list(missing))
    want_out = {
        "link inside text/plain": u("/trap/text.html"),
        "link inside a comment": u("/trap/comment.html"),
        "link inside a script": u("/trap/script.html"),
        "<img src>": u("/static/img-only.png"),
        "<link href>": u("/static/style.css"),
        "orphan linked only off-scope": u("/orphan/0.html"),
        "base href ignored": u("/special/s/"),
    }
    wrong = [f"{k}: {v}" for k, v in want_out.items()
             if v in r or any(x.startswith(v) for x in r)]
    chk.check(not wrong, "manifest: traps not reachable", lib.show_list(wrong))
    frag = [x for x in r if "#" in x]
    chk.check(not frag, "manifest: no URL carries a fragment", lib.show_list(frag))
    canon = [x for x in r if canonical_url(x) != x]
    chk.check(not canon, "manifest: URLs are canonical", lib.show_list(canon))
    offh = {url_hostport(x) for x in m["offscope_urls"]}
    chk.check(offh == set(m["offscope_hosts"]) and
              not any(url_hostport(x) in offh for x in r),
              "manifest: off-scope URLs listed, none reachable")
    st = m["reachable"][u("/special/malformed.html")]
    chk.check(st.get("title") == "Malformed page" and st.get("links", 0) >= 6,
              "manifest: malformed page keeps title and its 6 links", str(st))
    base = [x for x in r if r[x].get("status") == 200 and "/d/" in x]
    chk.check(len(base) > 10, "manifest: pages under /d/ reachable")
    types = collections.Counter(media_type(v["content_type"]) for v in r.values())
    chk.info(f"manifest: {len(r)} reachable, types {dict(types)}")


class Fetcher:
    """One persistent HTTP/1.1 connection per host:port."""

    def __init__(self):
        self.conns = {}
        self.local_ports = collections.defaultdict(set)

    def request(self, method, url):
        s = urlsplit(url)
        hp = s.netloc
        target = s.path + (f"?{s.query}" if s.query else "")
        for attempt in (1, 2):
            c = self.conns.get(hp)
            if c is None:
                c = http.client.HTTPConnection(hp, timeout=10)
                self.conns[hp] = c
            try:
                c.request(method, target)
                if c.sock:
                    self.local_ports[hp].add(c.sock.getsockname()[1])
                resp = c.getresponse()
                body = resp.read()
                return resp, body
            except (http.client.HTTPException, OSError):
                c.close()
                self.conns.pop(hp, None)
                if attempt == 2:
                    raise

    def close(self):
        for c in self.conns.values():
            c.close()


def http_crawl(m, fetcher):
    """BFS over HTTP with the manifest's rules. -> {url: (status, ctype,
    title)}, requests made."""
    scope = set(m["hosts"])
    seen = {s: 0 for s in m["seeds"]}
    queue = collections.deque(m["seeds"])
    result = {}
    while queue:
        url = queue.popleft()
        resp, body = fetcher.request("GET", url)
        ct = resp.getheader("Content-Type")
        title = None
        result[url] = (resp.status, ct, None)
        if resp.status != 200 or media_type(ct) != "text/html":
            continue
        page = parse_html(body)
        title = norm_title(page.title)
        result[url] = (resp.status, ct, title)
        base = urljoin(url, page.base) if page.base is not None else url
        for href in page.hrefs:
            t = canonical_url(urljoin(base, href.strip()))
            if t and url_hostport(t) in scope and t not in seen:
                seen[t] = 1
                queue.append(t)
    return result


def check_http(chk, m, srv):
    f = Fetcher()
    try:
        got = http_crawl(m, f)
        exp = m["reachable"]
        diff = sorted(set(got) ^ set(exp))
        chk.check(not diff, f"HTTP crawl finds exactly the manifest set "
                  f"({len(exp)} URLs)", lib.show_list(diff))
        bad = []
        for url, (status, ct, title) in got.items():
            e = exp.get(url)
            if e and (status != e["status"] or ct != e["content_type"]
                      or title != e.get("title")):
                bad.append(f"{url}: got {(status, ct, title)}, manifest "
                           f"{(e['status'], e['content_type'], e.get('title'))}")
        chk.check(not bad, "server status, Content-Type and title match the "
                  "manifest", lib.show_list(bad))

        # HEAD: headers of the GET, no body, Content-Length set
        url = f"http://{m['hosts'][0]}/files/doc.pdf"
        r1, b1 = f.request("GET", url)
        r2, b2 = f.request("HEAD", url)
        chk.check(r2.status == 200 and b2 == b"" and
                  r2.getheader("Content-Length") == str(len(b1)) and
                  r2.getheader("Content-Type") == "application/pdf",
                  "HEAD: 200, Content-Length of the GET body, no body")
        # query ignored for the file
        r3, b3 = f.request("GET", f"http://{m['hosts'][0]}/special/item.html?id=77")
        r4, b4 = f.request("GET", f"http://{m['hosts'][0]}/special/item.html")
        chk.check(r3.status == 200 and b3 == b4, "query string ignored for "
                  "the file mapping")
        # redirect chain
        hops, loc = [], "/__redirect/3"
        for _ in range(5):
            r, _b = f.request("GET", f"http://{m['hosts'][0]}{loc}")
            hops.append((loc, r.status))
            if r.status != 301:
                break
            loc = r.getheader("Location")
        chk.check([s for _, s in hops] == [301, 301, 301, 200] and
                  [p for p, _ in hops] == ["/__redirect/3", "/__redirect/2",
                                           "/__redirect/1", "/"],
                  "/__redirect/3: 301 -> 2 -> 1 -> / (200)", str(hops))
        # slow
        t0 = time.time()
        r, b = f.request("GET", f"http://{m['hosts'][1]}/__slow/0.3")
        dt = time.time() - t0
        chk.check(r.status == 200 and 0.3 <= dt < 2, f"/__slow/0.3 answers "
                  f"after {dt:.2f}s")
        # traversal
        bad = []
        for target in ("/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                       "/files/..%2f..%2f..%2fetc/passwd"):
            s = socket.create_connection(addr(m["hosts"][0]), timeout=5)
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close"
                      f"\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            if not data.startswith(b"HTTP/1.1 404") or b"root:" in data:
                bad.append(f"{target}: {data[:60]!r}")
        chk.check(not bad, "no path traversal out of the site root",
                  lib.show_list(bad))
        # off-scope host serves its own tree
        r, b = f.request("GET", f"http://{m['offscope_hosts'][0]}/")
        chk.check(r.status == 200 and b"Off-scope host" in b,
                  "off-scope host serves its own site")
        # concurrency
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            def one(_):
                c = http.client.HTTPConnection(m["hosts"][2], timeout=10)
                c.request("GET", "/__slow/0.5")
                st = c.getresponse().status
                c.close()
                return st
            sts = list(ex.map(one, range(20)))
        dt = time.time() - t0
        chk.check(sts == [200] * 20 and dt < 3, f"20 concurrent slow requests "
                  f"served in parallel ({dt:.2f}s)")
        # keep-alive latency (no Nagle/delayed-ACK stall)
        t0 = time.time()
        for _ in range(50):
            f.request("GET", f"http://{m['hosts'][0]}/p/0.html")
        per = (time.time() - t0) / 50
        chk.check(per < 0.02, f"keep-alive requests are fast ({per * 1000:.1f} "
                  "ms each)")
    finally:
        f.close()
    return f


def check_log(chk, m, log, fetcher):
    fields = {"host", "method", "path", "status", "t_start", "t_end", "conn",
              "peer_port"}
    bad = [r for r in log if not fields <= set(r) or r["t_end"] < r["t_start"]]
    chk.check(log and not bad, f"log: {len(log)} lines, all with {sorted(fields)}",
              lib.show_list(bad))
    h0 = m["hosts"][0]
    mine = [r for r in log if r["host"] == h0 and
            r["peer_port"] in fetcher.local_ports[h0]]
    conns = {r["conn"] for r in mine}
    one_port = all(len({r["peer_port"] for r in mine if r["conn"] == c}) == 1
                   for c in conns)
    chk.check(mine and one_port and len(conns) == len(fetcher.local_ports[h0])
              and len(mine) > 10 * len(conns),
              f"log: keep-alive, {len(mine)} requests to {h0} on "
              f"{len(conns)} connection(s), one peer port per conn id")
    want = {("GET", "/__redirect/3", 301), ("GET", "/__redirect/1", 301),
            ("HEAD", "/files/doc.pdf", 200), ("GET", "/__slow/0.3", 200),
            ("GET", "/special/item.html?id=77", 200)}
    have = {(r["method"], r["path"], r["status"]) for r in log}
    chk.check(want <= have, "log: method, path with query and status recorded",
              lib.show_list(want - have))
    slow = [r for r in log if r["path"] == "/__slow/0.3"]
    chk.check(slow and slow[0]["t_end"] - slow[0]["t_start"] >= 0.3,
              "log: t_start/t_end bracket the response")
    frag = [r for r in log if "#" in r["path"]]
    chk.check(not frag, "log: no fragments requested by the reference crawl")


def check_shutdown(chk, tmp):
    srv = lib.SiteServer(tmp / "s2", ["127.0.0.2:0", "127.0.0.3:0"],
                         tmp / "s2.jsonl", workdir=tmp)
    srv2 = lib.SiteServer(tmp / "s3", ["127.0.0.2:0", "127.0.0.3:0"],
                          tmp / "s3.jsonl", workdir=tmp)
    hps = srv.start()
    hps2 = srv2.start()
    chk.check(not set(hps) & set(hps2), "two servers at once get distinct "
              f"ports ({hps} vs {hps2})")
    # an idle keep-alive connection and an in-flight slow request
    idle = http.client.HTTPConnection(hps[0], timeout=10)
    idle.request("GET", "/")
    idle.getresponse().read()
    busy = socket.create_connection(addr(hps[1]), timeout=10)
    busy.sendall(b"GET /__slow/30 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    t0 = time.time()
    rc = srv.stop(timeout=10)
    dt = time.time() - t0
    chk.check(rc == 0 and dt < 5, f"SIGTERM with open connections: exit "
              f"status {rc} after {dt:.1f}s")
    idle.close()
    busy.close()
    chk.check(srv2.stop() == 0, "second server stops cleanly too")


def main():
    chk = lib.Checker("integration.test_site_server")
    tmp = lib.make_tmpdir("trawler-site-")
    srv = lib.SiteServer(tmp / "site", ["127.0.0.2:0", "127.0.0.3:0",
                                        "127.0.0.4:0", "127.0.0.5:0"],
                         tmp / "requests.jsonl")
    try:
        check_determinism(chk, tmp)
        hps = srv.start()
        m = lib.generate_site(tmp / "site", hps[:3], 150, seed=11,
                              offscope=hps[3:])
        check_features(chk, m)
        fetcher = check_http(chk, m, srv)
        rc = srv.stop()
        chk.check(rc == 0, "server exits 0 on SIGTERM")
        check_log(chk, m, srv.read_log(), fetcher)
        check_shutdown(chk, tmp)
    except Exception:
        chk.check(False, "test ran without an exception", traceback.format_exc())
    finally:
        srv.stop()
    rc = chk.summary()
    lib.cleanup_tmpdir(tmp, rc == 0)
    return rc


def test_main():  # pytest entry point
    assert main() == 0


if __name__ == "__main__":
    sys.exit(main())
