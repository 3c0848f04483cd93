#!/usr/bin/env python3
"""Benchmark site generator: a large, regular multi-host site, generated fast.

Usage:
  gen_site.py --out DIR --port PORT [--pages N] [--hosts 127.0.0.1,127.0.0.2,...]
              [--page-size BYTES] [--links K] [--fanout F] [--seed S]

Writes DIR/<ip>/ (one document root per host, all served on the same PORT)
and DIR/manifest.json: {"pages": N, "hosts": [...], "port": P,
"seeds": ["http://ip:P/", ...], "per_host": [...], "bytes": total}.

The N pages are split evenly over the hosts. On each host page 0 is the
root "/" (index.html), page j > 0 is /p/<j // 1000>/<j>.html. Every page
links to its children j*F+1 .. j*F+F on the same host (an F-ary tree, so
every page is reachable from its host's root through same-host links only:
`wget -r` without -H, one process per host, fetches exactly the host's
pages), and then to random pages until it has K distinct links: about a
quarter of them on other hosts (absolute URLs), the rest on the same host
(mixing absolute, root-relative and full-URL forms). Every link targets an
existing page, so a crawl of all hosts fetches exactly N pages, all 200.
Pages are ~page-size bytes of HTML (filler paragraphs). Same arguments ->
identical output. Needs only the Python standard library.
"""

import argparse
import json
import os
import random
import shutil
import sys

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua enim minim veniam "
         "quis nostrud exercitation ullamco laboris nisi aliquip commodo "
         "consequat duis aute irure reprehenderit voluptate velit esse cillum "
         "fugiat nulla pariatur excepteur sint occaecat cupidatat proident "
         "sunt culpa officia deserunt mollit anim laborum").split()


def page_path(j):
    return "/" if j == 0 else "/p/%d/%d.html" % (j // 1000, j)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--hosts", default="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4")
    ap.add_argument("--page-size", type=int, default=15000)
    ap.add_argument("--links", type=int, default=20)
    ap.add_argument("--fanout", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    hosts = [h for h in a.hosts.split(",") if h]
    H = len(hosts)
    if a.pages < H:
        sys.exit("gen_site.py: --pages must be >= the number of hosts")
    per_host = [a.pages // H + (1 if i < a.pages % H else 0) for i in range(H)]
    base = ["http://%s:%d" % (h, a.port) for h in hosts]
    rnd = random.Random(a.seed)

    # A pool of filler paragraphs; each page strings a random selection.
    paras = []
    for _ in range(256):
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(55, 85))]
        paras.append("<p>" + " ".join(words).capitalize() + ".</p>\n")
    avg_para = sum(map(len, paras)) / len(paras)

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    total_bytes = 0
    for hi, host in enumerate(hosts):
        root = os.path.join(a.out, host)
        n = per_host[hi]
        for d in range((n - 1) // 1000 + 1):
            os.makedirs(os.path.join(root, "p", str(d)), exist_ok=True)
        others = [k for k in range(H) if k != hi]
        for j in range(n):
            links = []
            seen = set()
            # tree children: the reachability guarantee
            for c in range(j * a.fanout + 1, min(j * a.fanout + a.fanout, n - 1) + 1):
                links.append(page_path(c))
                seen.add((hi, c))
            tries = 0
            while len(links) < a.links and tries < 4 * a.links:
                tries += 1
                if others and rnd.random() < 0.25:
                    h = rnd.choice(others)
                    t = rnd.randrange(per_host[h])
                    if (h, t) in seen:
                        continue
                    seen.add((h, t))
                    links.append(base[h] + page_path(t))
                else:
                    t = rnd.randrange(n)
                    if (hi, t) in seen or t == j:
                        continue
                    seen.add((hi, t))
                    r = rnd.random()
                    links.append(base[hi] + page_path(t) if r < 0.2 else page_path(t))
            head = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                    "<title>Bench page %d of %s</title></head>\n<body>\n"
                    "<h1>Page %d on %s</h1>\n<ul>\n" % (j, host, j, host))
            nav = "".join('<li><a href="%s">link %d</a></li>\n' % (u, i)
                          for i, u in enumerate(links))
            fill = max(0, a.page_size - len(head) - len(nav) - 40)
            k = int(fill / avg_para + 0.5)
            body = "".join(paras[rnd.randrange(256)] for _ in range(k))
            html = head + nav + "</ul>\n" + body + "</body></html>\n"
            rel = "index.html" if j == 0 else "p/%d/%d.html" % (j // 1000, j)
            data = html.encode()
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)
            total_bytes += len(data)

    manifest = {"pages": a.pages, "hosts": hosts, "port": a.port,
                "seeds": [b + "/" for b in base], "per_host": per_host,
                "bytes": total_bytes, "links_per_page": a.links, "fanout": a.fanout}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
