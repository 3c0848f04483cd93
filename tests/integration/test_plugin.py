#!/usr/bin/env python3
"""The example plug-in (examples/plugin/wordcount.c) built, loaded by path
and producing output in a crawl.

1. BUILD/wordcount.so exists (CMake target trawler_example_plugin, built
   here if missing), exports trawler_handler_v1 and needs nothing from the
   trawler library; the README's stand-alone command
   `cc -shared -fPIC -I libtrawler -o wordcount.so wordcount.c` compiles it.
2. A small site with pages of known content (comments, entities, script
   and style, upper-case tags, non-ASCII text, a text/plain file, a 404) is
   crawled with `./run.sh --plugin BUILD/wordcount.so`; every text/html
   page's fields.words and fields.h1 in pages.jsonl must equal the count
   computed here in Python from the served bytes, by a regex tokenizer
   written from the rule in wordcount.c's header (not a port of its
   scanner); other pages have no such fields.
3. Failures: `./run.sh --plugin /no/such/file.so` fails at once naming the
   path; trawler-consumer with a missing plug-in exits non-zero before
   consuming, naming it; `./run.sh --plugin NOT-AN-ELF.so` fails (the
   consumer refuses it) and says why.

Run: python3 tests/integration/test_plugin.py   (exit 0 = pass)
Env: TRAWLER_BUILD_DIR (build run.sh uses), TRAWLER_BROKERS/TRAWLER_REDIS
(else Kafka and Redis are started here), TRAWLER_KEEP_TMP=1.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from sitecommon import NOT_FOUND_BODY, media_type  # noqa: E402

TIMEOUT = 240

# The rule in wordcount.c, as one regex tokenizer: comments, raw-text
# elements (script/style, up to their end tag), tags, entities, words.
TOKEN = re.compile(rb"""
    (?P<comment> <!-- .*? (?:-->|\Z) )
  | (?P<raw> <(?P<rn>script|style)(?![A-Za-z0-9]) [^>]* (?:>|\Z) .*? (?=</(?P=rn)|\Z) )
  | (?P<tag> < (?P<tn>[A-Za-z/!?][A-Za-z0-9]*) [^>]* (?:>|\Z) )
  | (?P<entity> &[A-Za-z0-9\#]*;? )
  | (?P<word> [A-Za-z0-9]+ )
  | (?P<other> . )
""", re.S | re.I | re.X)


def wordcount(body, min_length=1):
    """-> (words, h1) as examples/plugin/wordcount.c counts them."""
    words = h1 = 0
    for m in TOKEN.finditer(body):
        kind = m.lastgroup
        if kind == "word" and len(m.group()) >= min_length:
            words += 1
        elif kind == "tag" and m.group("tn").lower() == b"h1":
            h1 += 1
    return words, h1


# A page whose counts are stated, not computed: pins the rule itself.
KNOWN_PAGE = (
    "<!DOCTYPE html><html><head><title>Known</title>"
    "<style>p { color: red }</style></head><body>"
    "<h1>Hello world</h1><!-- not <h1> counted -->"
    "<p>AT&amp;T caf&eacute; 3.14 e-mail</p>"
    "<script>var a = '<h1>'; </script><H1 class=x>x</H1>"
    "<a href=\"/\">home</a></body></html>\n")
KNOWN_COUNTS = (12, 2)   # Known Hello world AT T caf 3 14 e mail x home

PAGES = {
    "index.html": lambda links: lib.html_doc(
        "Plug-in test index", links,
        body="<p>An index page &mdash; with <b>bold</b>words and a < b.</p>\n"),
    "known.html": lambda links: KNOWN_PAGE,
    "prose.html": lambda links: (
        "<html><head><TITLE>Prose</TITLE><SCRIPT type=\"text/javascript\">"
        "if (a < b) { document.write('<p>hidden words</p>'); }</SCRIPT></head>\n"
        "<body><h1>Chapter 1</h1>\n<p>It was a bright cold day in April, and the "
        "clocks were striking thirteen.</p>\n<p>Ünïcödé wörds — split by "
        "non-ASCII bytes; naïve café.</p>\n<h1>Chapter 2</h1><h10>not h1</h10>"
        "<h1/>\n<p>multi\nline\ttext   with\r\nwhitespace</p>"
        "<!-- a comment with words --><p>end</p></body></html>\n"),
    "empty.html": lambda links: "",
    "tagsoup.html": lambda links: (
        "<p>unclosed <b>tags <i>everywhere<p>one&two&amp;three &#169; 2024"
        "<style>ignored { }</STYLE>after<script>never closed"),
    "notes.txt": lambda links: "plain text words are not counted at all\n",
}
LINKS = ["/known.html", "/prose.html", "/empty.html", "/tagsoup.html",
         "/notes.txt", "/missing.html"]


def write_site(site_root, hp):
    bodies = {}
    for rel, make in PAGES.items():
        data = make(LINKS if rel == "index.html" else ["/"]).encode()
        lib.write_site_file(site_root, hp, rel, data)
        url = f"http://{hp}/" if rel == "index.html" else f"http://{hp}/{rel}"
        bodies[url] = data
    return bodies


def ensure_plugin(chk):
    """BUILD/wordcount.so, built (target trawler_example_plugin) if needed."""
    build = lib.build_dir()
    so = build / "wordcount.so"
    root = lib.repo_root()
    if not (build / "CMakeCache.txt").is_file():
        build.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["cmake", "-S", str(root), "-B", str(build),
                            "-DCMAKE_BUILD_TYPE=Release"], capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            chk.check(False, "configure the build", r.stdout + r.stderr)
            return None
    r = subprocess.run(["cmake", "--build", str(build), "--target",
                        "trawler_example_plugin"], capture_output=True,
                       text=True, timeout=300)
    chk.check(r.returncode == 0 and so.is_file(),
              f"CMake builds the example plug-in as {so}",
              lib.tail(r.stdout + r.stderr))
    return so if so.is_file() else None


def check_so(chk, so, tmp):
    nm = shutil.which("nm")
    if nm:
        r = subprocess.run([nm, "-D", "--defined-only", str(so)],
                           capture_output=True, text=True)
        chk.check(re.search(r"\bT trawler_handler_v1\b", r.stdout),
                  "wordcount.so exports trawler_handler_v1", r.stdout + r.stderr)
        r = subprocess.run([nm, "-D", "--undefined-only", str(so)],
                           capture_output=True, text=True)
        trawler_syms = [ln for ln in r.stdout.splitlines()
                        if re.search(r"\btr_\w+", ln)]
        chk.check(r.returncode == 0 and not trawler_syms,
                  "wordcount.so needs no symbol from the trawler library "
                  "(handler.h only)", lib.show_list(trawler_syms) + r.stderr)
    cc = shutil.which("cc") or shutil.which("gcc")
    root = lib.repo_root()
    out = tmp / "standalone" / "wordcount.so"
    out.parent.mkdir()
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-shared", "-fPIC", "-I", "libtrawler", "-o", str(out),
                        "examples/plugin/wordcount.c"], cwd=root,
                       capture_output=True, text=True, timeout=120)
    chk.check(r.returncode == 0 and out.is_file(),
              "README's stand-alone build (cc -shared -fPIC -I libtrawler ...) "
              "compiles, warning-free", r.stdout + r.stderr)


def check_fields(chk, records, bodies):
    chk.check(wordcount(KNOWN_PAGE.encode()) == KNOWN_COUNTS,
              f"the Python reference counts the pinned page as {KNOWN_COUNTS}",
              f"got {wordcount(KNOWN_PAGE.encode())}")
    bad, counted, plain = [], 0, 0
    seen = set()
    for rec in records:
        url = rec.get("url")
        seen.add(url)
        fields = rec.get("fields") or {}
        html = media_type(rec.get("content_type")) == "text/html" and rec.get("status")
        if not html:
            plain += 1
            if "words" in fields or "h1" in fields:
                bad.append(f"{url} ({rec.get('content_type')}): unexpected fields "
                           f"{fields}")
            continue
        if url in bodies:
            body = bodies[url]
        elif rec.get("status") == 404:
            body = NOT_FOUND_BODY
        else:
            bad.append(f"{url}: status {rec.get('status')}, body unknown to the test")
            continue
        want = tuple(str(n) for n in wordcount(body))
        got = (fields.get("words"), fields.get("h1"))
        counted += 1
        if got != want:
            bad.append(f"{url}: words/h1 {got}, expected {want}")
    chk.check(not bad and counted >= 6,
              f"fields.words and fields.h1 match the reference on every HTML "
              f"page ({counted} counted, {plain} non-HTML without fields)",
              lib.show_list(bad))
    missing = sorted(set(bodies) - seen)
    chk.check(not missing, "every page of the site is in pages.jsonl",
              lib.show_list(missing))
    known = [r for r in records if r.get("url", "").endswith("/known.html")]
    if known:
        f = known[0].get("fields") or {}
        chk.check((f.get("words"), f.get("h1")) == tuple(map(str, KNOWN_COUNTS)),
                  f"pinned page: words={KNOWN_COUNTS[0]}, h1={KNOWN_COUNTS[1]}",
                  f"fields {f}")


def check_failures(chk, tmp, seed):
    missing = tmp / "no" / "such" / "plugin.so"
    t0 = time.time()
    res = lib.run_trawler(["--plugin", str(missing), "--allow-private",
                           "--out", str(tmp / "out-missing"), seed], timeout=60)
    chk.check(res.rc not in (0, None) and not res.timed_out
              and str(missing) in res.output and time.time() - t0 < 30,
              "run.sh --plugin MISSING fails fast, naming the path",
              res.describe())
    chk.check(not any(p["comm"].startswith("trawler-") for p in res.seen.values()),
              "... before starting any worker",
              lib.show_list(f"{p['comm']}" for p in res.seen.values()))

    consumer = lib.build_dir() / "trawler-consumer"
    env = dict(os.environ, TRAWLER_BROKERS="127.0.0.1:1",
               TRAWLER_REDIS="redis://127.0.0.1:1/0")
    env.pop("TRAWLER_PLUGIN", None)
    t0 = time.time()
    try:
        r = subprocess.run([str(consumer), "--plugin", str(missing),
                            "--connect-check-timeout", "20"],
                           capture_output=True, text=True, timeout=60, env=env)
        rc, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = None, f"timed out: {e}"
    chk.check(rc not in (0, None) and str(missing) in out
              and time.time() - t0 < 15,
              "trawler-consumer --plugin MISSING exits non-zero at once, naming it",
              f"exit {rc}, {time.time() - t0:.1f}s\n{lib.tail(out)}")

    bogus = tmp / "not-a-plugin.so"
    bogus.write_text("this is not an ELF file\n")
    res = lib.run_trawler(["--plugin", str(bogus), "--allow-private",
                           "--out", str(tmp / "out-bogus"), seed], timeout=120)
    chk.check(res.rc not in (0, None) and not res.timed_out
              and str(bogus) in res.output,
              "run.sh --plugin NOT-A-SHARED-OBJECT fails; the consumer's "
              "message naming the file reaches run.sh's output", res.describe())
    left = lib.leftover_processes(res.marker, grace=15)
    chk.check(not left, "... and every process it started has exited",
              lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
    if left:
        lib.kill_marker_processes(res.marker)


def main():
    chk = lib.Checker("integration.test_plugin")
    if not lib.require_run_sh(chk):
        return chk.summary()
    tmp = lib.make_tmpdir("trawler-plugin-")
    chk.info(f"temp dir {tmp}")
    srv = lib.SiteServer(tmp / "site", ["127.0.0.2:0"], tmp / "requests.jsonl")
    try:
        with lib.shared_services(chk):
            so = ensure_plugin(chk)
            if so:
                check_so(chk, so, tmp)
            hp = srv.start()[0]
            bodies = write_site(tmp / "site", hp)
            seed = f"http://{hp}/"
            if so:
                out = tmp / "out"
                args = ["--plugin", str(so), "--allow-private", "--delay", "0",
                        "--out", str(out), seed]
                chk.info("running ./run.sh " + " ".join(args))
                res = lib.run_trawler(args, timeout=TIMEOUT)
                if chk.check(not res.timed_out and res.rc == 0,
                             "run.sh --plugin wordcount.so exits 0", res.describe()):
                    records, errors = lib.read_jsonl(out / "pages.jsonl")
                    chk.check(not errors, "pages.jsonl parses", lib.show_list(errors))
                    check_fields(chk, records, bodies)
                left = lib.leftover_processes(res.marker, grace=15)
                chk.check(not left, "every process run.sh started has exited",
                          lib.show_list(f"pid {p}: {d}" for p, d in left.items()))
                if left:
                    lib.kill_marker_processes(res.marker)
            check_failures(chk, tmp, seed)
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
