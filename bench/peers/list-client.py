"""The listing pages' client for bench/listing.ts: one page at a time, with no collector of its own.

Usage: list-client.py BASE_URL TOKEN

Reads one query string per line on stdin (what follows `/v1/object/listByPath?`), GETs it on one
kept-alive HTTP/1.1 connection with the bearer token, and answers one JSON line on stdout:
{"ms", "serverMs", "code", "objects", "commonPrefixes", "isTruncated", "nextContinuationToken"}.
The clock runs from the request's first byte to the body's last; the body is read into a buffer
kept from page to page. What the page says is read after the clock stops: the fields before
`objects` are parsed as JSON and the objects are counted; with a line that starts `!`, the whole
body is also parsed as JSON and must agree. Python frees by reference counting, so no collection
of the client's own lands inside a later page's time (the bench's Node client ran a full
collection every 8 pages for the external memory of its bodies).
"""

import http.client
import json
import re
import sys
import time
from urllib.parse import urlsplit

OBJECTS_FIELD = b',"objects":['
OBJECT_START = b'{"objectID":'
BODY_END = b"]}}"
SERVER_TIMING = re.compile(r"app;dur=([\d.]+)")


def main() -> None:
    base, token = sys.argv[1:3]
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"Authorization": f"Bearer {token}"}
    buffer = bytearray(4 << 20)
    view = memoryview(buffer)
    for line in sys.stdin:
        line = line.rstrip("\n")
        check_whole = line.startswith("!")
        query = line[1:] if check_whole else line
        started = time.perf_counter()
        conn.request("GET", f"/v1/object/listByPath?{query}", headers=headers)
        res = conn.getresponse()
        length = int(res.getheader("content-length"))
        if length > len(buffer):
            buffer = bytearray(length)
            view = memoryview(buffer)
        got = 0
        while got < length:
            n = res.readinto(view[got:length])
            if not n:
                raise SystemExit(f"the body ended after {got} of {length} bytes")
            got += n
        ms = (time.perf_counter() - started) * 1000
        body = bytes(view[:length])
        timing = SERVER_TIMING.search(res.getheader("server-timing") or "")
        if timing is None:
            raise SystemExit("the answer has no Server-Timing header")
        at = body.find(OBJECTS_FIELD)
        if res.status != 200 or at < 0 or not body.endswith(BODY_END):
            raise SystemExit(f"not a listing page ({res.status}): {body[:300]!r}")
        head = json.loads(body[:at] + b"}}")
        data = head["data"]
        objects = body.count(OBJECT_START, at)
        if check_whole:
            whole = json.loads(body)["data"]
            if (len(whole["objects"]), whole["nextContinuationToken"], whole["commonPrefixes"]) != (objects, data["nextContinuationToken"], data["commonPrefixes"]):
                raise SystemExit(f"page {query}: its JSON and its bytes disagree")
        answer = {
            "ms": ms,
            "serverMs": float(timing.group(1)),
            "code": head["code"],
            "objects": objects,
            "commonPrefixes": len(data["commonPrefixes"]),
            "isTruncated": data["isTruncated"],
            "nextContinuationToken": data["nextContinuationToken"],
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


main()
