#!/usr/bin/env python3
"""Deterministic multi-host test site generator with a BFS manifest.

Usage:
  gen_site.py --out DIR --hosts 127.0.0.2:P1,127.0.0.3:P2 --pages N
              [--seed S] [--page-size BYTES] [--links-per-page K]
              [--offscope HOST:PORT[,HOST:PORT...]]

Writes DIR/<host>_<port>/... for every seeded and off-scope host, and
DIR/manifest.json:
  seeds         one root URL per seeded host ("http://host:port/")
  reachable     {canonical URL: {status, content_type, depth, title?,
                 a_hrefs?, links?, inscope_links?}} computed by BFS from the
                 seeds: <a href> links (and area/link rel=next/frame/iframe,
                 as the crawler; the site uses only <a>), urljoin against the
                 page URL or its first <base href>, only links whose
                 host:port is a seeded host, only through text/html pages
                 that return 200. links = distinct resolved http(s) URLs on
                 the page (the crawler's "links" field); a_hrefs = raw count.
  offscope_urls every URL on an off-scope host linked from a reachable page.
  unreachable_files  files on seeded hosts that the BFS never reaches (traps).

--pages is the total number of numbered content pages, split across the
seeded hosts (each host also gets ~20 fixed special pages and files).
Same arguments -> byte-identical output.
"""

import argparse
import collections
import json
import os
import posixpath
import random
import shutil
import struct
import sys
import zlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sitecommon import (NOT_FOUND_CONTENT_TYPE, canonical_url,  # noqa: E402
                        content_type_for, host_dir_name, media_type,
                        url_hostport, url_path_to_relfile)

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
         "eiusmod tempor incididunt ut labore et dolore magna aliqua enim "
         "minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
         "commodo consequat duis aute irure reprehenderit voluptate velit "
         "esse cillum fugiat nulla pariatur excepteur sint occaecat").split()

NDIRS = 7          # content pages spread over /p/ and /d/00../d/06/
MIN_PAGES_PER_HOST = 12


# --------------------------------------------------------------------------
# Site model

def page_path(i):
    """Path (no leading slash) of content page i on every host."""
    if i % 3 == 0:
        return f"p/{i}.html"
    if i % 3 == 1:
        return f"d/{i % NDIRS:02d}/{i}.html"
    return f"d/{i % NDIRS:02d}/s/{i}.html"


def rel_link(target, from_path):
    """Relative reference from the page at from_path to target (both without
    leading slash), e.g. '../p/3.html' or 's/5.html'."""
    start = posixpath.dirname(from_path) or "."
    return posixpath.relpath(target, start)


def png_bytes(w=1, h=1, rgb=(200, 30, 30)):
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def pdf_bytes(text):
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% "
            + text.encode() + b"\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def html_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


class Host:
    def __init__(self, hostport, index, npages):
        self.hp = hostport
        self.index = index
        self.npages = npages
        self.files = {}   # relpath -> bytes

    def url(self, path=""):
        return f"http://{self.hp}/{path}"


def filler(rng, nbytes):
    out, size = [], 0
    while size < nbytes:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
        para = f"<p>{words}.</p>\n"
        out.append(para)
        size += len(para)
    return "".join(out)


def html_page(title, body, head_extra="", raw_title=False, upper=False):
    t = title if raw_title else html_escape(title)
    if upper:
        return ("<!DOCTYPE html>\n<HTML>\n<HEAD>\n<META charset=\"utf-8\">\n"
                f"<TITLE>{t}</TITLE>\n{head_extra}</HEAD>\n<BODY>\n{body}"
                "</BODY>\n</HTML>\n")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
            "<meta charset=\"utf-8\">\n"
            f"<title>{t}</title>\n{head_extra}</head>\n<body>\n{body}"
            "</body>\n</html>\n")


def link_list(links, upper=False):
    a = "A HREF" if upper else "a href"
    ea = "A" if upper else "a"
    items = "".join(f"<li><{a}=\"{html_escape(h)}\">{html_escape(text)}"
                    f"</{ea}></li>\n" for h, text in links)
    return f"<ul>\n{items}</ul>\n"


class SiteGen:
    def __init__(self, args):
        self.args = args
        self.hosts = []
        n = len(args.hosts)
        for idx, hp in enumerate(args.hosts):
            share = args.pages // n + (1 if idx < args.pages % n else 0)
            self.hosts.append(Host(hp, idx, max(share, MIN_PAGES_PER_HOST)))
        self.off = [Host(hp, idx, 0) for idx, hp in enumerate(args.offscope)]

    # ---- helpers -------------------------------------------------------
    def other(self, h, k=1):
        return self.hosts[(h.index + k) % len(self.hosts)]

    def same_host_link(self, rng, h, target, from_path):
        form = rng.choice(("rel", "rel", "root", "abs"))
        if form == "rel":
            ref = rel_link(target, from_path)
        elif form == "root":
            ref = "/" + target
        else:
            ref = h.url(target)
        if rng.random() < 0.15:
            ref += f"#sec{rng.randint(1, 5)}"
        return ref

    def dir_with_both(self, h):
        """A /d/KK/ dir holding a page i (depth 1) and a page j (in s/)."""
        for k in range(NDIRS):
            ones = [i for i in range(h.npages)
                    if i % 3 == 1 and i % NDIRS == k]
            twos = [i for i in range(h.npages)
                    if i % 3 == 2 and i % NDIRS == k]
            if ones and twos:
                return k, ones[0], twos[0]
        raise SystemExit("gen_site: too few pages for the <base href> page")

    # ---- content pages ---------------------------------------------------
    def content_page(self, rng, h, i):
        me = page_path(i)
        links = []
        nxt = (i + 1) % h.npages
        links.append((self.same_host_link(rng, h, page_path(nxt), me),
                      f"next: page {nxt}"))
        for _ in range(self.args.links_per_page):
            r = rng.random()
            if r < 0.15 and len(self.hosts) > 1:
                o = self.hosts[rng.randrange(len(self.hosts))]
                j = rng.randrange(o.npages)
                ref = o.url(page_path(j))
                if rng.random() < 0.2:
                    ref += "#x"
                links.append((ref, f"{o.hp} page {j}"))
            elif r < 0.2:
                links.append(("/", "home"))
            else:
                j = rng.randrange(h.npages)
                links.append((self.same_host_link(rng, h, page_path(j), me),
                              f"page {j}"))
        if i % 10 == 0:
            title_raw = f"{h.hp} page {i} &amp; friends"
        elif i % 10 == 5:
            title_raw = f"\n   {h.hp}\n   page {i}\n"
        else:
            title_raw = f"{h.hp} page {i}"
        upper = i % 10 == 7
        body = (f"<h1>Page {i}</h1>\n" + filler(rng, self.args.page_size // 3)
                + link_list(links, upper=upper)
                + filler(rng, self.args.page_size // 2))
        h.files[me] = html_page(title_raw, body, raw_title=True,
                                upper=upper).encode()

    # ---- fixed pages -----------------------------------------------------
    def home(self, h):
        links = [("p/0.html", "first page"),
                 ("special/fragments.html", "fragments"),
                 ("special/query.html", "query strings"),
                 ("special/missing.html", "missing pages"),
                 ("special/files.html", "non-HTML files"),
                 ("special/base.html", "base href"),
                 ("special/base-cross.html", "base href, other host"),
                 ("special/schemes.html", "other schemes"),
                 ("special/malformed.html", "malformed HTML"),
                 ("special/resources.html", "resources, not links"),
                 ("special/absolute.html", "absolute forms"),
                 ("special/with%20space.html", "percent-encoded name")]
        if self.off:
            links.append(("special/offscope.html", "off-scope links"))
        dirs = sorted({posixpath.dirname(page_path(i))
                       for i in range(h.npages) if i % 3 == 1})
        links += [(d + "/", f"directory {d}") for d in dirs]
        for o in self.hosts:
            if o is not h:
                links.append((f"http://{o.hp}", f"home of {o.hp}"))
        h.files["index.html"] = html_page(
            f"Home of {h.hp}", "<h1>Home</h1>\n" + link_list(links)).encode()
        for d in dirs:
            k = int(d.split("/")[1])
            pages = [i for i in range(h.npages) if i % NDIRS == k
                     and i % 3 in (1, 2)]
            dl = [("../../", "root"), ("./", "self")]
            dl += [(rel_link(page_path(i), d + "/index.html"), f"page {i}")
                   for i in pages[:20]]
            h.files[d + "/index.html"] = html_page(
                f"Directory {d} of {h.hp}", link_list(dl)).encode()

    def specials(self, h):
        o = self.other(h)
        P = page_path
        f = h.files

        f["special/fragments.html"] = html_page("Fragments", link_list([
            ("#top", "top of this page"),
            ("", "empty href = this page"),
            ("fragments.html#again", "self with fragment"),
            (f"/{P(0)}#intro", "page 0 #intro"),
            (f"/{P(0)}#other", "page 0 #other"),
            (f"../{P(3)}#x", "page 3 #x"),
            (h.url(P(1)) + "#abs", "page 1 absolute #abs"),
            ("/special/item.html?id=1#frag", "query and fragment"),
        ])).encode()

        f["special/query.html"] = html_page("Query strings", link_list([
            ("item.html?id=1", "id=1"),
            ("item.html?id=2", "id=2"),
            ("item.html?id=1#f", "id=1 with fragment"),
            ("/special/item.html?id=2", "id=2 root-relative"),
            ("item.html?id=3&v=a", "id=3&v=a (entity-encoded &)"),
            ("item.html", "no query"),
        ])).encode()
        f["special/item.html"] = html_page("Item page", link_list([
            ("query.html", "back"),
            ("?id=9", "query-only relative reference"),
            ("item.html?id=1", "id=1"),
        ])).encode()

        f["special/missing.html"] = html_page("Missing pages", link_list([
            ("/missing/1.html", "404 root-relative"),
            ("../missing/2.html", "404 relative"),
            (h.url("missing/3.html") + "#frag", "404 absolute"),
            ("/files/missing.pdf", "404 pdf"),
            ("nothing-here/", "404 directory"),
        ])).encode()

        f["special/files.html"] = html_page("Files", link_list([
            ("../files/doc.pdf", "pdf"),
            ("/files/image.png", "png"),
            (h.url("files/notes.txt"), "txt"),
            ("/files/doc.pdf#page=2", "pdf with fragment"),
            ("/files/image.png?size=2", "png with query"),
        ])).encode()
        f["files/doc.pdf"] = pdf_bytes(f"document on {h.hp}")
        f["files/image.png"] = png_bytes(2, 2, (h.index * 60 % 256, 90, 150))
        # Text, not HTML: the markup inside must not be followed.
        f["files/notes.txt"] = (
            f"Plain text on {h.hp}.\n"
            "<a href=\"/trap/text.html\">not a link: this is text/plain</a>\n"
            f"{h.url('orphan/0.html')}\n").encode()

        k, i1, i2 = self.dir_with_both(h)
        f["special/base.html"] = html_page(
            "Base href", link_list([
                (f"{i1}.html", f"page {i1} via base"),
                (f"s/{i2}.html", f"page {i2} via base"),
                ("./", "directory index via base"),
                ("../../special/base.html#self", "back to this page"),
            ]), head_extra=f"<base href=\"/d/{k:02d}/\">\n").encode()
        ko, j1, j2 = self.dir_with_both(o)
        f["special/base-cross.html"] = html_page(
            "Base href on another host", link_list([
                (f"{j1}.html", f"{o.hp} page {j1} via base"),
                (f"s/{j2}.html", f"{o.hp} page {j2} via base"),
                ("/special/files.html", "root-relative via base"),
            ]), head_extra=f"<base href=\"{o.url(f'd/{ko:02d}/')}\">\n"
        ).encode()

        f["special/schemes.html"] = html_page("Other schemes", link_list([
            ("mailto:webmaster@example.invalid", "mail"),
            ("javascript:void(0)", "script"),
            ("JavaScript:alert(1)", "script, mixed case"),
            ("tel:+15555550100", "phone"),
            ("data:text/plain;base64,SGVsbG8=", "data"),
            (f"../{P(2)}", "one real link"),
        ])).encode()

        f["special/malformed.html"] = self.malformed(h)

        f["special/resources.html"] = html_page(
            "Resources are not links",
            "<img src=\"/static/img-only.png\" alt=\"\">\n"
            "<script src=\"/static/app.js\"></script>\n"
            + link_list([(f"../{P(0)}", "a real link")]),
            head_extra="<link rel=\"stylesheet\" href=\"/static/style.css\">\n"
        ).encode()
        f["static/style.css"] = b"body { font-family: sans-serif; }\n"
        f["static/app.js"] = b"console.log('not crawled');\n"
        f["static/img-only.png"] = png_bytes(1, 1)

        dot_target = P(2)  # d/02/s/2.html
        f["special/absolute.html"] = html_page("Absolute forms", link_list([
            (f"HTTP://{h.hp}/{P(1)}", "upper-case scheme"),
            (f"http://{h.hp}", "host without trailing slash"),
            (f"http://{h.hp}/d/../{dot_target}", "dot segments"),
            (f"//{o.hp}/{P(4)}", "scheme-relative, other host"),
            (f"/./{P(3)}", "root-relative with ./"),
            (f"http://{h.hp}/special/./absolute.html", "self"),
        ])).encode()

        f["special/with space.html"] = html_page(
            "File name with a space",
            link_list([("../index.html", "index.html (distinct from /)")])
        ).encode()

        if self.off:
            links = []
            for x in self.off:
                links += [(f"http://{x.hp}/", f"off-scope {x.hp}"),
                          (x.url("op/1.html"), "off-scope page"),
                          (f"//{x.hp}/op/2.html#f", "off-scope scheme-rel")]
            f["special/offscope.html"] = html_page(
                "Off-scope links", link_list(links)).encode()

        # Traps: exist (200) but are only "linked" from places a crawler
        # must not follow (text/plain, comments, scripts, off-scope hosts).
        for name in ("text", "comment", "script"):
            f[f"trap/{name}.html"] = html_page(
                f"Trap {name}", "<p>must not be crawled</p>\n").encode()
        for j in range(3):
            f[f"orphan/{j}.html"] = html_page(
                f"Orphan {j}", "<p>only linked from off-scope hosts</p>\n"
            ).encode()

    def malformed(self, h):
        P = page_path
        parts = [
            b"<html><head><title>Malformed page</title>\n<body>\n",
            b"<div><p>unclosed paragraph <b>bold <i>italic\n",
            f"<a href=\"/{P(4)}\">ok link</a>\n".encode(),
            b"<table><tr><td>cell<td>cell two\n",
            b"junk \x80\x81\xfe\xff bytes \x01\x02\x1b[31m and \xc3\x28 here\n",
            f"<a href='../{P(5)}'>single quoted</a>\n".encode(),
            f"<A HREF=\"/{P(6)}\">upper case</A>\n".encode(),
            f"<a href=/{P(7)}>unquoted</a>\n".encode(),
            b"</span></div></div></em></table>\n",
            b"<a>anchor without href</a> <a name=\"n\">named</a>\n",
            b"<!-- <a href=\"/trap/comment.html\">commented out</a> -->\n",
            b"<script>document.write('<a href=\"/trap/script.html\">x</a>');"
            b"</script>\n",
            b"\xef\xbb\xbf\xff\xfe more junk \x7f\n",
            f"<p><a href=\"http://{h.hp}/{P(8)}\">after the junk"
            f"</a>\n".encode(),
            f"<li><a href=\"/{P(9)}#frag\">in a stray li".encode(),
            b"\n<p>unclosed at EOF <div>",
        ]
        return b"".join(parts)

    def offscope_site(self, x):
        links = [(h.url(f"orphan/{j}.html"), "in-scope orphan")
                 for h in self.hosts for j in range(3)]
        links += [(f"/op/{j}.html", f"off-scope page {j}") for j in range(4)]
        x.files["index.html"] = html_page(
            f"Off-scope host {x.hp}", link_list(links)).encode()
        for j in range(4):
            x.files[f"op/{j}.html"] = html_page(
                f"Off-scope {x.hp} page {j}", link_list(links)).encode()

    # ---- write -----------------------------------------------------------
    def generate(self):
        for h in self.hosts:
            rng = random.Random(self.args.seed * 1000 + h.index)
            for i in range(h.npages):
                self.content_page(rng, h, i)
            self.home(h)
            self.specials(h)
        for x in self.off:
            self.offscope_site(x)
        out = self.args.out
        os.makedirs(out, exist_ok=True)
        for h in self.hosts + self.off:
            hd = os.path.join(out, host_dir_name(h.hp))
            if os.path.isdir(hd):
                shutil.rmtree(hd)
            for rel, data in sorted(h.files.items()):
                fp = os.path.join(hd, rel)
                os.makedirs(os.path.dirname(fp), exist_ok=True)
                with open(fp, "wb") as fh:
                    fh.write(data)


# --------------------------------------------------------------------------
# BFS over the files on disk (independent of the generator's model)

# Elements followed, as in libtrawler/links.h: <a href>, <area href>,
# <link rel=next|prev|previous href>, <frame src>, <iframe src>. The site
# itself only uses <a href> for links; <img>, <script>, <link rel=stylesheet>
# appear as resources that must not be followed.
LINK_RELS = {"next", "prev", "previous"}


class LinkParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base = None
        self.hrefs = []
        self.title = None
        self._title_parts = None

    def handle_starttag(self, tag, attrs):
        d = {}
        for k, v in attrs:
            d.setdefault(k, v)
        if tag == "base" and self.base is None and d.get("href") is not None:
            self.base = d["href"]
        elif tag in ("a", "area") and d.get("href") is not None:
            self.hrefs.append(d["href"])
        elif tag == "link" and d.get("href") is not None and \
                set((d.get("rel") or "").lower().split()) & LINK_RELS:
            self.hrefs.append(d["href"])
        elif tag in ("frame", "iframe") and d.get("src") is not None:
            self.hrefs.append(d["src"])
        elif tag == "title" and self.title is None \
                and self._title_parts is None:
            self._title_parts = []

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag == "title" and self._title_parts is not None:
            self.title = "".join(self._title_parts)
            self._title_parts = None

    def handle_data(self, data):
        if self._title_parts is not None:
            self._title_parts.append(data)


def norm_title(t):
    return " ".join(t.split()) if t is not None else None


def parse_html(data):
    p = LinkParser()
    p.feed(data.decode("utf-8", errors="replace"))
    p.close()
    return p


def bfs(out, seeds, scope, offscope):
    """Returns (reachable, offscope_urls, visited_files)."""
    reachable = {}
    offscope_urls = set()
    visited_files = set()
    queue = collections.deque()
    for s in seeds:
        if s not in reachable:
            reachable[s] = {"depth": 0}
            queue.append(s)
    while queue:
        url = queue.popleft()
        info = reachable[url]
        hp = url_hostport(url)
        rel = url_path_to_relfile(urlsplit(url).path)
        fp = os.path.join(out, host_dir_name(hp), rel) if rel else None
        if fp and os.path.isdir(fp):
            raise SystemExit(f"gen_site: {url} names a directory without a "
                             "trailing slash (the server would redirect)")
        if fp and os.path.isfile(fp):
            info["status"] = 200
            info["content_type"] = content_type_for(rel)
            visited_files.add((hp, rel))
        else:
            info["status"] = 404
            info["content_type"] = NOT_FOUND_CONTENT_TYPE
            continue
        if media_type(info["content_type"]) != "text/html":
            continue
        with open(fp, "rb") as fh:
            page = parse_html(fh.read())
        info["title"] = norm_title(page.title)
        base = urljoin(url, page.base.strip()) if page.base is not None \
            else url
        targets = []
        for href in page.hrefs:
            t = canonical_url(urljoin(base, href.strip(" \t\n\r\f")))
            if t is not None and t not in targets:
                targets.append(t)
        info["a_hrefs"] = len(page.hrefs)
        info["links"] = len(targets)
        info["inscope_links"] = sum(1 for t in targets
                                    if url_hostport(t) in scope)
        for t in targets:
            thp = url_hostport(t)
            if thp in offscope:
                offscope_urls.add(t)
            if thp not in scope or t in reachable:
                continue
            reachable[t] = {"depth": info["depth"] + 1}
            queue.append(t)
    return reachable, offscope_urls, visited_files


# --------------------------------------------------------------------------

def parse_hostports(s):
    out = []
    for item in s.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"bad HOST:PORT {item!r}")
        out.append(f"{host.lower()}:{int(port)}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--hosts", required=True, type=parse_hostports,
                    help="comma-separated HOST:PORT list (seeded hosts)")
    ap.add_argument("--pages", required=True, type=int,
                    help="total numbered content pages over all hosts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--page-size", type=int, default=2048)
    ap.add_argument("--links-per-page", type=int, default=6)
    ap.add_argument("--offscope", type=parse_hostports, default=[],
                    help="comma-separated HOST:PORT list served but not "
                         "seeded; the crawler must never fetch them")
    args = ap.parse_args(argv)
    if not args.hosts:
        ap.error("--hosts is empty")
    if len(set(args.hosts)) != len(args.hosts) or \
            set(args.hosts) & set(args.offscope):
        ap.error("hosts must be distinct and not off-scope")

    gen = SiteGen(args)
    gen.generate()

    seeds = [f"http://{hp}/" for hp in args.hosts]
    reachable, offscope_urls, visited = bfs(args.out, seeds, set(args.hosts),
                                            set(args.offscope))
    unreachable = []
    for h in gen.hosts:
        for rel in sorted(h.files):
            if (h.hp, rel) not in visited:
                unreachable.append(h.url(rel))
    by_status = collections.Counter(v["status"] for v in reachable.values())
    by_type = collections.Counter(media_type(v["content_type"])
                                  for v in reachable.values())
    manifest = {
        "version": 1,
        "generator": {"seed": args.seed, "pages": args.pages,
                      "page_size": args.page_size,
                      "links_per_page": args.links_per_page},
        "hosts": args.hosts,
        "offscope_hosts": args.offscope,
        "seeds": seeds,
        "reachable": dict(sorted(reachable.items())),
        "offscope_urls": sorted(offscope_urls),
        "unreachable_files": unreachable,
        "stats": {"reachable": len(reachable),
                  "by_status": {str(k): v for k, v in sorted(by_status.items())},
                  "by_type": dict(sorted(by_type.items())),
                  "max_depth": max(v["depth"] for v in reachable.values())},
    }
    tmp = os.path.join(args.out, "manifest.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    print(f"gen_site: {len(args.hosts)} hosts (+{len(args.offscope)} "
          f"off-scope), {len(reachable)} reachable URLs "
          f"{manifest['stats']['by_status']}, "
          f"{len(offscope_urls)} off-scope URLs, out={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
