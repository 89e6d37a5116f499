"""The leanest HTTP server for one file, for bench/storage.ts: what curl can reach from any server.

Usage: sendfile-server.py FILE

Listens on a free port of 127.0.0.1 and prints it on a line of its own. Every GET, whatever its
path, answers 200 with FILE's bytes and Content-Length; the body goes from the page cache to the
socket with sendfile(2), so the server copies nothing in user space and costs next to no CPU. One
connection at a time, closed after its answer; it runs until it is killed.
"""

import os
import socket
import sys


def serve(conn: socket.socket, path: str) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        got = conn.recv(65536)
        if not got:
            return
        request += got
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        sent = 0
        while sent < size:
            sent += os.sendfile(conn.fileno(), fd, sent, size - sent)
    finally:
        os.close(fd)


def main() -> None:
    path = sys.argv[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                serve(conn, path)
            except (BrokenPipeError, ConnectionResetError):
                pass


main()
