#!/usr/bin/env python3
"""A stand-in for Chromium's --remote-debugging-pipe end, for test_cdp.c:
reads NUL-terminated JSON commands on fd 3, answers on fd 4.
  Echo  -> an event {"method":"Ev"} and the reply {"id", "result":{"method",
           "session"}} in one write, then "not json\\0" (to be skipped)
  Split -> its reply written in two parts, 50 ms apart
  Big   -> 2 MiB without a NUL (over the reader's cap)
  Exit  -> exit(0): the reader sees EOF
"""
import json
import os
import sys
import time

if "--remote-debugging-pipe" not in sys.argv:
    sys.exit(3)
buf = b""
while True:
    chunk = os.read(3, 65536)
    if not chunk:
        sys.exit(0)
    buf += chunk
    while b"\0" in buf:
        raw, buf = buf.split(b"\0", 1)
        m = json.loads(raw)
        reply = json.dumps({"id": m["id"], "result": {
            "method": m["method"], "session": m.get("sessionId", "")}}).encode() + b"\0"
        if m["method"] == "Echo":
            os.write(4, b'{"method":"Ev","params":{}}\0' + reply + b"not json\0")
        elif m["method"] == "Split":
            os.write(4, reply[:7])
            time.sleep(0.05)
            os.write(4, reply[7:])
        elif m["method"] == "Big":
            os.write(4, b"x" * (2 * 1024 * 1024))
        elif m["method"] == "Exit":
            sys.exit(0)
