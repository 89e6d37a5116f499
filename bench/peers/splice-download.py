"""A download client for bench/storage.ts whose file writes cost what cp's do.

Usage: splice-download.py URL TOKEN OUT

Prints the seconds from before it connects until the file is closed: the download's own time,
without the interpreter's start (0.03 s from /usr/bin/python3, but 0.3 s through a pyenv shim,
which bench/storage.ts would otherwise count as download time).

One HTTP/1.1 GET with a bearer token; the body goes socket -> pipe -> file with splice(2), so the
kernel copies it into the page cache the way cp's copy_file_range does, with no user-space buffer
and no small writes (curl writes 4 KiB + 12 KiB per 16 KiB it receives). It handles only what the
bench needs: plain http, a 200 answer with Content-Length; anything else is an error, and a body
shorter than Content-Length fails.
"""

import fcntl
import os
import socket
import sys
import time
from urllib.parse import urlsplit

F_SETPIPE_SZ = 1031
CHUNK = 1 << 20


def main() -> None:
    url, token, out = sys.argv[1:4]
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise SystemExit(f"not an http://host:port URL: {url}")
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    started = time.perf_counter()
    conn = socket.create_connection((parts.hostname, parts.port))
    conn.sendall(
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        got = conn.recv(65536)
        if not got:
            raise SystemExit("connection closed before the headers ended")
        head += got
    header_block, body_start = head.split(b"\r\n\r\n", 1)
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    if status_line.split(" ")[1] != "200":
        raise SystemExit(f"answer: {status_line}: {body_start[:500]!r}")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    if "content-length" not in headers:
        raise SystemExit("the answer has no Content-Length")
    left = int(headers["content-length"])

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, body_start)
        left -= len(body_start)
        pipe_out, pipe_in = os.pipe()
        fcntl.fcntl(pipe_in, F_SETPIPE_SZ, CHUNK)
        while left > 0:
            moved = os.splice(conn.fileno(), pipe_in, min(left, CHUNK))
            if moved == 0:
                raise SystemExit(f"connection closed {left} bytes before the body's end")
            written = 0
            while written < moved:
                written += os.splice(pipe_out, fd, moved - written)
            left -= moved
    finally:
        os.close(fd)
    print(f"{time.perf_counter() - started:.6f}")


main()
