"""Shared by gen_site.py and server.py: URL -> file mapping, content types,
canonical URLs. The generator's BFS and the server must agree on these, so
they live in one place."""

import posixpath
from urllib.parse import unquote, urlsplit, urlunsplit

# Extension -> Content-Type header value sent by server.py.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript",
    ".json": "application/json",
    ".xml": "application/xml",
    ".zip": "application/zip",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
NOT_FOUND_CONTENT_TYPE = "text/html; charset=utf-8"
NOT_FOUND_BODY = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title>"
                  b"</head><body><h1>Not Found</h1></body></html>\n")
DEFAULT_PORTS = {"http": 80, "https": 443}


def content_type_for(fs_path):
    """Content-Type header value for a file path (by extension)."""
    ext = posixpath.splitext(fs_path)[1].lower()
    return CONTENT_TYPES.get(ext, DEFAULT_CONTENT_TYPE)


def media_type(ct):
    """'text/html; charset=utf-8' -> 'text/html' (None stays None)."""
    if ct is None:
        return None
    return ct.split(";", 1)[0].strip().lower()


def host_dir_name(hostport):
    """'127.0.0.2:8080' -> '127.0.0.2_8080' (the per-host subdir)."""
    host, _, port = hostport.rpartition(":")
    return f"{host}_{port}"


def url_path_to_relfile(url_path):
    """Map the path part of a request (query already removed) to a file path
    relative to the host dir, or None if it escapes the root.
    '/' and '.../' map to index.html in that directory."""
    p = unquote(url_path)
    if not p.startswith("/"):
        p = "/" + p
    if "\x00" in p:
        return None
    trailing = p.endswith("/")
    norm = posixpath.normpath(p)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if not norm.startswith("/") or "/../" in norm + "/":
        return None
    rel = norm.lstrip("/")
    if rel in ("", "."):
        return "index.html"
    if trailing:
        return rel + "/index.html"
    return rel


def remove_dot_segments(path):
    """RFC 3986 section 5.2.4."""
    out = []
    inp = path
    while inp:
        if inp.startswith("../"):
            inp = inp[3:]
        elif inp.startswith("./"):
            inp = inp[2:]
        elif inp.startswith("/./"):
            inp = "/" + inp[3:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../"):
            inp = "/" + inp[4:]
            if out:
                out.pop()
        elif inp == "/..":
            inp = "/"
            if out:
                out.pop()
        elif inp in (".", ".."):
            inp = ""
        else:
            start = 1 if inp.startswith("/") else 0
            i = inp.find("/", start)
            if i < 0:
                i = len(inp)
            out.append(inp[:i])
            inp = inp[i:]
    return "".join(out)


def canonical_url(url):
    """Canonical form used in manifests: lowercase scheme and host, no
    default port, dot segments resolved, empty path -> '/', no fragment.
    Returns None for non-http(s) URLs or URLs without a host."""
    s = urlsplit(url)
    scheme = s.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    host = s.hostname
    if not host:
        return None
    try:
        port = s.port
    except ValueError:
        return None
    netloc = host.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = remove_dot_segments(s.path) or "/"
    return urlunsplit((scheme, netloc, path, s.query, ""))


def url_hostport(url):
    """'http://127.0.0.2:8080/x' -> '127.0.0.2:8080' (port always present)."""
    s = urlsplit(url)
    port = s.port or DEFAULT_PORTS.get(s.scheme.lower(), 0)
    return f"{(s.hostname or '').lower()}:{port}"
