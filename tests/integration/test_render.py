#!/usr/bin/env python3
"""Render fetch mode: pages built by JavaScript, loaded in headless Chromium
(issue 9, docs/render.md).

Site A (127.0.0.61) serves a JS-built site: index.html holds no link and no
title text; /app.js sets the title, adds a field and the links /js/1.html
and /js/2.html, and makes three sub-resource requests that must never reach
a server: /img/pic.png (an image: blocked type), /secret/data.json
(robots.txt disallows /secret/) and http://127.0.0.62:PORT/private.json
(site B, a private address outside --allow-address: the SSRF guard);
as controls, /ok/data.json on A and http://127.0.0.65:PORT/public.json
(site C, inside --allow-address) must be requested.
/js/1.html builds a link to /js/3.html with an inline script.

Run 1 (plain fetch, no --render): only the index is crawled; its record
  has none of the JS links.
Run "seeds" (--render-seeds, no --render): the index is rendered (its
  script's title), /js/1 and /js/2 are crawled with status 200 and not
  rendered, /js/3 (linked only by /js/1's script) is never found.
Run "reaped" (--render-seeds, TRAWLER_LEASE=1, a host answering in 2.5 s):
  every copy of the seed the lease reaper re-enqueues still carries
  render: true (read back from the frontier topic with kcat + protoc), and
  no copy of another page does.
Run 2 (--render .): index, /js/1, /js/2, /js/3 all crawled with status
  200, rendered: true, the JS title and field; /app.js was requested,
  while /img/pic.png, /secret/data.json and anything on B were not.
Run 3 (crash, hang): 20 pages, each waiting 0.6 s on a slow
  sub-resource, --render-timeout 4; mid-crawl the Chromium process is
  SIGKILLed, later one renderer (tab) process is SIGKILLed, later the
  browser is SIGSTOPped (hung); every page still ends with status 200 and
  rendered, the producer logs the lost browser twice (the hung one is
  found when its tab does not come back), and pages needed retries.
Run 3b (politeness, --delay 0.4): a page with three same-host scripts;
  every request to the host (robots.txt, page, scripts) starts >= 0.4 s
  after the previous one.
Run 4 (wait + timeout): --render-wait selector:#late; a page that adds
  #late after 300 ms is captured with it, a page that never does ends
  with error timeout (max-attempts 1).
  A page whose DOM is 100 KB with --render-max-dom 4096 is kept, cut to
  at most 4096 bytes (UTF-8 boundary) and flagged truncated.
Run 5 (no browser): TRAWLER_CHROMIUM=/nonexistent: the page ends with
  error render_unavailable, the crawl completes, the producer warns.

Run "rate" prints rendered pages/s (24 JS-linked pages, --delay 0, 4 tabs,
one host: one page at a time) and checks every page was rendered.

Skips (exit 0 with a message) when no Chromium binary can be found or
installed. Run: python3 tests/integration/test_render.py
(TEST_RENDER_LOG=debug: the politeness run's producer logs every request
decision.)
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

RUN_TIMEOUT = 240
ROBOTS = "User-agent: *\nDisallow: /secret/\n"

APP_JS = """
document.title = 'rendered index';
const f = document.createElement('div');
f.id = 'field'; f.textContent = 'built-by-js';
document.body.appendChild(f);
for (const p of ['/js/1.html', '/js/2.html']) {
  const a = document.createElement('a'); a.href = p; a.textContent = p;
  document.body.appendChild(a);
}
const img = document.createElement('img'); img.src = '/img/pic.png';
document.body.appendChild(img);
fetch('/ok/data.json').catch(() => {});
fetch('http://PUBLIC/public.json').catch(() => {});
fetch('/secret/data.json').catch(() => {});
fetch('http://PRIVATE/private.json').catch(() => {});
"""

INDEX = """<!DOCTYPE html>
<html><head><title>plain</title><script src="/app.js" defer></script></head>
<body><p>nothing here without JavaScript</p></body></html>
"""

JS1 = """<!DOCTYPE html>
<html><head><title>js one</title></head><body>
<script>
const a = document.createElement('a'); a.href = '/js/3.html'; a.textContent = 'three';
document.body.appendChild(a);
</script></body></html>
"""


def chromium_available():
    for p in ("/usr/lib/chromium/chromium",):
        if os.access(p, os.X_OK):
            return p
    return lib.ensure_debian_package("chromium", "chromium") or \
        shutil.which("chromium-browser") or shutil.which("google-chrome")


def paths_requested(log, host):
    return [r["path"] for r in log if r["host"].startswith(host)]


def pages(out):
    recs, _ = lib.read_jsonl(out / "pages.jsonl")
    return {r["url"]: r for r in recs}


def run(chk, name, args, tmp, env, timeout=RUN_TIMEOUT):
    out = tmp / name
    res = lib.run_trawler(["--out", str(out), "--delay", "0", *args], timeout,
                          env_extra=env)
    ok = chk.check(res.rc == 0 and not res.timed_out, f"{name}: run.sh completes",
                   res.describe())
    return out, res, ok


def producer_log(out):
    p = out / "logs" / "producer-1.log"
    return p.read_text(errors="replace") if p.exists() else ""


def js_site(chk, tmp):
    root = tmp / "site"
    srv = lib.SiteServer(root, ["127.0.0.61:0", "127.0.0.62:0", "127.0.0.65:0"],
                         tmp / "server.jsonl")
    srv.start()
    a, b, c = srv.hostports
    lib.write_site_file(root, a, "robots.txt", ROBOTS)
    lib.write_site_file(root, a, "index.html", INDEX)
    lib.write_site_file(root, a, "app.js", APP_JS.replace("PRIVATE", b).replace("PUBLIC", c))
    lib.write_site_file(root, a, "js/1.html", JS1)
    lib.write_site_file(root, a, "js/2.html", lib.html_doc("js two", ["/"]))
    lib.write_site_file(root, a, "js/3.html", lib.html_doc("js three"))
    lib.write_site_file(root, a, "img/pic.png", b"\x89PNG\r\n\x1a\n")
    lib.write_site_file(root, a, "secret/data.json", "{}")
    lib.write_site_file(root, a, "ok/data.json", "{}")
    lib.write_site_file(root, b, "private.json", "{}")
    lib.write_site_file(root, c, "public.json", "{}")
    return srv, a, b, c


def test_js_site(chk, tmp):
    srv, a, b, c = js_site(chk, tmp)
    # A and C are allowed: B (also loopback) stays behind the SSRF guard
    env = {"TRAWLER_ALLOW_ADDRESS": "127.0.0.61/32,127.0.0.65/32",
           "TRAWLER_ROBOTS_TTL": "120"}
    seed = f"http://{a}/"
    js_links = {f"http://{a}/js/1.html", f"http://{a}/js/2.html"}
    try:
        out, _, ok = run(chk, "plain", [seed], tmp, env)
        if ok:
            got = pages(out)
            idx = got.get(seed, {})
            chk.check(idx.get("status") == 200 and not idx.get("rendered"),
                      "plain: index fetched, not rendered", idx)
            chk.check(not any(u.startswith(f"http://{a}/js/") for u in got),
                      "plain: none of the JS-built pages found", sorted(got))
            chk.check(idx.get("title") == "plain", "plain: title is the HTML one", idx)

        # --render-seeds alone: the seed is rendered, the pages its script
        # links to are fetched plainly (the mark is not inherited), so the
        # link that only /js/1.html's inline script builds is never found
        out, _, ok = run(chk, "seeds", ["--render-seeds", seed], tmp, env)
        if ok:
            got = pages(out)
            idx = got.get(seed, {})
            chk.check(idx.get("status") == 200 and idx.get("rendered") is True
                      and idx.get("title") == "rendered index",
                      "seeds: the seed is rendered (title set by its script)", idx)
            plain = {u: r for u, r in got.items() if u in js_links}
            chk.check(set(plain) == js_links and all(
                r.get("status") == 200 and not r.get("rendered") for r in plain.values()),
                "seeds: /js/1 and /js/2 crawled with status 200, not rendered",
                json.dumps(list(got.values()), indent=1)[:3000])
            chk.check(f"http://{a}/js/3.html" not in got,
                      "seeds: /js/3 (built only by /js/1's script) not found", sorted(got))

        out, res, ok = run(chk, "render", ["--render", ".", seed], tmp, env)
        if ok:
            got = pages(out)
            want = {seed} | js_links | {f"http://{a}/js/3.html"}
            html = {u: r for u, r in got.items() if u in want}
            chk.check(set(html) == want, "render: index and every JS-built page crawled",
                      f"got {sorted(got)}")
            chk.check(all(r.get("status") == 200 and r.get("rendered") is True
                          and not r.get("error") for r in html.values()),
                      "render: every page status 200 and rendered: true",
                      json.dumps(list(html.values()), indent=1)[:3000])
            idx = got.get(seed, {})
            chk.check(idx.get("title") == "rendered index",
                      "render: title set by the script", idx)
            chk.check(idx.get("links", 0) >= 2 and idx.get("followed", 0) >= 2,
                      "render: the JS-built links are extracted and followed", idx)
        log = srv.read_log()
        pa = paths_requested(log, a.split(":")[0])
        chk.check("/app.js" in pa and "/ok/data.json" in pa,
                  "render: the page's script ran and its allowed requests went out", pa)
        pc = paths_requested(log, c.split(":")[0])
        chk.check("/public.json" in pc,
                  "render: a request to another allowed host went out (the guard is selective)",
                  pc)
        chk.check("/img/pic.png" not in pa, "render: image sub-resource blocked (never requested)", pa)
        chk.check("/secret/data.json" not in pa,
                  "render: sub-resource disallowed by robots.txt never requested", pa)
        pb = paths_requested(log, b.split(":")[0])
        chk.check(pb == [], "render: request to a private address refused by the SSRF guard "
                  "(nothing reached 127.0.0.62)", pb)
    finally:
        srv.stop()


def test_reaped_seed(chk, tmp):
    """Run "reaped": --render-seeds, a 1 s lease and a host answering in
    2.5 s, so the lease reaper re-enqueues URLs still in flight. Every
    re-enqueued copy of the seed, read back from the frontier (kcat +
    protoc), still asks for a render; no copy of another page does."""
    tag = f"render-reap-{os.getpid()}"  # the run's own topics, read back below
    topics = {f"TRAWLER_{k.upper()}_TOPIC": f"trawler.{tag}.{k}"
              for k in ("frontier", "pages", "items", "dlq")}
    root = tmp / "site-reap"
    srv = lib.SiteServer(root, ["127.0.0.66:0"], tmp / "server-reap.jsonl",
                         extra_args=["--slow", "127.0.0.66:0=2.5"])
    try:
        (h,) = srv.start()
        lib.write_site_file(root, h, "index.html",
                            lib.html_doc("reap index", ["/a.html", "/b.html"]))
        for name in ("a", "b"):
            lib.write_site_file(root, h, f"{name}.html", lib.html_doc(f"reap {name}", ["/"]))
        seed = f"http://{h}/"
        env = {"TRAWLER_LEASE": "1", "TRAWLER_ALLOW_ADDRESS": "127.0.0.66/32", **topics}
        out, _, ok = run(chk, "reaped", ["--render-seeds", seed], tmp, env)
        if ok:
            got = pages(out)
            chk.check(got.get(seed, {}).get("rendered") is True and all(
                got.get(f"http://{h}/{n}.html", {}).get("status") == 200 for n in "ab"),
                "reaped: seed rendered, both linked pages crawled", sorted(got))
        copies = []  # (url, render) of each re-enqueued request
        for payload in lib.kafka_messages(os.environ["TRAWLER_BROKERS"],
                                          topics["TRAWLER_FRONTIER_TOPIC"]):
            text = lib.protoc_text(payload, "CrawlRequest")
            if re.search(r'key: "reaped"\s*value: "1"', text):
                copies.append((lib.protoc_fields(text).get("url", ""),
                               re.search(r"^render: true$", text, re.M) is not None))
        seeds = [c for c in copies if c[0] == seed]
        chk.info(f"reaped: {len(copies)} re-enqueued copies, {len(seeds)} of the seed")
        chk.check(seeds, "reaped: the lease re-enqueued the seed (else this run shows nothing)",
                  lib.show_list(copies))
        chk.check(seeds and all(r for _, r in seeds),
                  "reaped: each re-enqueued copy of the seed still asks for a render",
                  lib.show_list(seeds))
        chk.check(not [u for u, r in copies if u != seed and r],
                  "reaped: no re-enqueued copy of another page asks for a render",
                  lib.show_list(copies))
    finally:
        subprocess.run([str(lib.trawlerctl()), "delete-topics"],
                       env=dict(os.environ, **topics), capture_output=True, timeout=60)
        srv.stop()


def test_crash_and_rate(chk, tmp):
    root = tmp / "site2"
    srv = lib.SiteServer(root, ["127.0.0.63:0"], tmp / "server2.jsonl")
    srv.start()
    (h,) = srv.hostports
    n = 20
    for i in range(n):
        nxt = [f"/p/{j}.html" for j in (2 * i + 1, 2 * i + 2) if j < n]
        links = "".join(f"const a{k}=document.createElement('a');a{k}.href='{p}';"
                        f"document.body.appendChild(a{k});" for k, p in enumerate(nxt))
        body = (f"<!DOCTYPE html><html><head><title>p{i}</title></head><body>"
                f"<script>{links}</script>"
                f"<script src=\"/__slow/0.6?p={i}\"></script></body></html>")
        lib.write_site_file(root, h, "index.html" if i == 0 else f"p/{i}.html", body)
    # rate: a site of 24 pages, no slow sub-resource
    for i in range(24):
        nxt = [f"/q/{j}.html" for j in (2 * i + 1, 2 * i + 2) if j < 24]
        links = "".join(f"const a{k}=document.createElement('a');a{k}.href='{p}';"
                        f"document.body.appendChild(a{k});" for k, p in enumerate(nxt))
        body = (f"<!DOCTYPE html><html><head><title>q{i}</title></head><body>"
                f"<script>{links}</script></body></html>")
        lib.write_site_file(root, h, f"q/{i}.html", body)
    env = {"TRAWLER_RENDER_TABS": "2", "TRAWLER_RENDER_TIMEOUT": "4"}
    try:
        out, res, ok = run(chk, "rate", ["--allow-private", "--render", ".",
                                          f"http://{h}/q/0.html"], tmp,
                           {"TRAWLER_RENDER_TABS": "4"})
        if ok:
            got = pages(out)
            m = re.search(r"pages/s\s+([0-9.]+)", res.stdout)
            chk.check(len(got) == 24 and all(r.get("rendered") for r in got.values()),
                      "rate: 24 rendered pages", sorted(got))
            chk.info(f"rendered pages/s (24 pages, 4 tabs, delay 0): "
                     f"{m.group(1) if m else '?'}")

        killed = []
        token = f"render-crash-{os.getpid()}-{time.time_ns()}"
        needle = f"TRAWLER_TEST_RENDER_TOKEN={token}".encode()

        stopped = []   # the browser SIGSTOPped (hung), to be killed by the producer
        renderer = []  # a renderer (one tab's process) SIGKILLed

        def ours(match):
            return [pid for pid, p in lib.list_processes().items()
                    if match(p["cmdline"]) and p["environ"] and
                    needle in p["environ"].split(b"\0")]

        def killer():
            # this run's Chromium processes inherit the token from the
            # producer's environment; act as pages come out
            deadline = time.time() + 150
            while time.time() < deadline and not stopped:
                try:
                    with open(tmp / "crash" / "pages.jsonl") as fh:
                        done = sum(1 for _ in fh)
                except OSError:
                    done = 0
                browser = ours(lambda c: "--remote-debugging-pipe" in c)
                if done >= 3 and not killed and browser:
                    os.kill(browser[0], signal.SIGKILL)
                    killed.append(browser[0])
                elif done >= 8 and killed and not renderer and browser:
                    # renderers do not inherit the environment (the zygote
                    # clears it): the browser's descendants; all of them,
                    # so the tab of the page being rendered is among them
                    procs = lib.list_processes()
                    for pid in lib.descendants(browser[0], procs):
                        if "--type=renderer" in procs[pid]["cmdline"]:
                            os.kill(pid, signal.SIGKILL)
                            renderer.append(pid)
                elif done >= 13 and renderer and browser:
                    os.kill(browser[0], signal.SIGSTOP)
                    stopped.append(browser[0])
                time.sleep(0.1)

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        env["TRAWLER_TEST_RENDER_TOKEN"] = token
        out, res, ok = run(chk, "crash", ["--allow-private", "--render", ".",
                                          f"http://{h}/"], tmp, env)
        t.join(5)
        chk.check(killed, "crash: a Chromium process of the run was SIGKILLed mid-crawl",
                  "no browser process found")
        chk.check(renderer, "crash: a renderer (tab) process was SIGKILLed mid-crawl",
                  "no renderer process found")
        chk.check(stopped, "hang: the browser was SIGSTOPped mid-crawl", "not reached")
        for pid in stopped:  # never leave a stopped process behind
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if ok:
            got = pages(out)
            want = {f"http://{h}/"} | {f"http://{h}/p/{i}.html" for i in range(1, n)}
            chk.check(set(got) == want, "crash: every page crawled (nothing lost)",
                      f"missing {sorted(want - set(got))}")
            chk.check(all(r.get("status") == 200 and r.get("rendered") for r in got.values()),
                      "crash: every page status 200, rendered",
                      json.dumps([r for r in got.values() if r.get("status") != 200])[:2000])
            chk.check(any(r.get("attempts", 1) > 1 for r in got.values()),
                      "crash: the page(s) in the killed browser were retried",
                      [(u, r.get("attempts")) for u, r in got.items()])
            log = producer_log(out)
            chk.check(log.count("browser lost") >= 2, "crash, hang: producer logged the lost "
                      "browser twice (killed, then not answering)", log[-3000:])
            chk.check("not answering" in log, "hang: the stopped browser was detected",
                      log[-3000:])
            chk.check("tab lost" in log, "crash: the killed renderer's page was noticed",
                      log[-3000:])
            chk.check(all(lib.list_processes().get(pid) is None or
                          lib.list_processes()[pid]["comm"] == "" for pid in stopped) or
                      not ours(lambda c: "--remote-debugging-pipe" in c),
                      "hang: no browser of the run left behind", stopped)
    finally:
        srv.stop()


def test_politeness(chk, tmp):
    root = tmp / "site4"
    srv = lib.SiteServer(root, ["127.0.0.66:0"], tmp / "server4.jsonl")
    srv.start()
    (h,) = srv.hostports
    delay = 0.4
    scripts = "".join(f'<script src="/s{i}.js"></script>' for i in range(3))
    lib.write_site_file(root, h, "index.html",
                        f"<!DOCTYPE html><html><head><title>polite</title>{scripts}"
                        "</head><body></body></html>")
    for i in range(3):
        lib.write_site_file(root, h, f"s{i}.js", f"window.s{i} = {i};")
    try:
        out, res, ok = run(chk, "polite", ["--allow-private", "--render", ".",
                                           "--delay", str(delay), f"http://{h}/"], tmp,
                           {"TRAWLER_LOG_LEVEL": os.environ.get("TEST_RENDER_LOG", "info")})
        if ok:
            got = pages(out)
            chk.check(got.get(f"http://{h}/", {}).get("rendered"), "polite: page rendered",
                      got)
        recs = sorted(srv.read_log(), key=lambda r: r["t_start"])
        paths = [r["path"] for r in recs]
        gaps = [b["t_start"] - a["t_start"] for a, b in zip(recs, recs[1:])]
        chk.check({"/s0.js", "/s1.js", "/s2.js"} <= set(paths),
                  "polite: the page's same-host scripts were loaded", paths)
        chk.check(gaps and min(gaps) >= delay - 0.01,
                  f"polite: same-host sub-resources keep the {delay} s delay",
                  list(zip(paths[1:], [round(g, 3) for g in gaps])))
    finally:
        srv.stop()


def test_wait_timeout_unavailable(chk, tmp):
    root = tmp / "site3"
    srv = lib.SiteServer(root, ["127.0.0.64:0"], tmp / "server3.jsonl")
    srv.start()
    (h,) = srv.hostports
    lib.write_site_file(root, h, "late.html",
                        "<!DOCTYPE html><html><head><title>late</title></head><body><script>"
                        "setTimeout(()=>{const d=document.createElement('p');d.id='late';"
                        "d.textContent='arrived';document.body.appendChild(d);"
                        "document.title='late arrived';},300);</script></body></html>")
    lib.write_site_file(root, h, "never.html", lib.html_doc("never"))
    lib.write_site_file(root, h, "big.html",
                        "<!DOCTYPE html><html><head><title>big</title></head><body>"
                        "<p id=\"late\">x</p><script>document.body.appendChild("
                        "document.createTextNode('\u00e9'.repeat(100000)));</script>"
                        "</body></html>")
    try:
        env = {"TRAWLER_RENDER_WAIT": "selector:#late", "TRAWLER_RENDER_TIMEOUT": "3",
               "TRAWLER_MAX_ATTEMPTS": "1", "TRAWLER_RENDER_MAX_DOM": "4096"}
        out, res, ok = run(chk, "wait", ["--allow-private", "--render", ".",
                                         f"http://{h}/late.html", f"http://{h}/never.html",
                                         f"http://{h}/big.html"],
                           tmp, env)
        if ok:
            got = pages(out)
            late = got.get(f"http://{h}/late.html", {})
            never = got.get(f"http://{h}/never.html", {})
            chk.check(late.get("status") == 200 and late.get("title") == "late arrived",
                      "wait: selector page captured after its element appeared", late)
            chk.check(never.get("error") == "timeout" and never.get("status") == 0,
                      "timeout: page without the selector ends with error timeout", never)
            big = got.get(f"http://{h}/big.html", {})
            chk.check(big.get("status") == 200 and big.get("truncated") is True and
                      4000 <= big.get("bytes", 0) <= 4096,
                      "big: a DOM over --render-max-dom is cut at the cap and flagged", big)

        out, res, ok = run(chk, "nobrowser", ["--allow-private", "--render", "late",
                                              f"http://{h}/late.html"], tmp,
                           {"TRAWLER_CHROMIUM": "/nonexistent/chromium"})
        if ok:
            got = pages(out)
            late = got.get(f"http://{h}/late.html", {})
            chk.check(late.get("error") == "render_unavailable",
                      "no browser: render page ends with error render_unavailable", late)
            chk.check("render mode unavailable" in producer_log(out),
                      "no browser: producer warns at start-up", producer_log(out)[-1500:])
    finally:
        srv.stop()


def main():
    chk = lib.Checker("test_render")
    if not chromium_available():
        print("SKIP: no Chromium binary (install: deploy/deps.sh --render); "
              "render tests not run")
        return 0
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-render-")
    try:
        with lib.shared_services(chk):
            for t in (test_js_site, test_reaped_seed, test_crash_and_rate, test_politeness,
                      test_wait_timeout_unavailable):
                try:
                    t(chk, tmp)
                except Exception:
                    chk.check(False, f"{t.__name__} raised", traceback.format_exc())
    finally:
        lib.cleanup_tmpdir(tmp, not chk.failed())
    return chk.summary()


if __name__ == "__main__":
    sys.exit(main())
