"""The leanest receiving end of an upload, for bench/storage.ts: what a curl upload can reach here.

Usage: receive-server.py DIR

Listens on a free port of 127.0.0.1 and prints it on a line of its own. Every request with a
Content-Length has its body read in 1 MiB pieces straight into one reused buffer and written to a
new file in DIR, while a second thread reads the file back behind the writer and hashes it with
SHA-256 (hashlib lets go of the interpreter's lock while it hashes). The answer is 200 with the
hash of the whole body in hex. No multipart parsing (the few hundred bytes of envelope are hashed
and written with the file), no database, and no write-behind: the file's pages are left for the
caller's `sync`. A body's file stays until the next request, so that `sync` still has it to write.
One connection at a time, closed after its answer; it runs until it is killed.
"""

import hashlib
import os
import socket
import sys
import threading

PIECE = 1 << 20


class Hasher(threading.Thread):
    """Hashes the file `fd` up to `written` as the writer moves it on, until `finish` is called."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.written = 0
        self.finished = False
        self.moved = threading.Condition()
        self.sha = hashlib.sha256()

    def advance(self, n: int) -> None:
        with self.moved:
            self.written += n
            self.moved.notify()

    def finish(self) -> str:
        with self.moved:
            self.finished = True
            self.moved.notify()
        self.join()
        return self.sha.hexdigest()

    def run(self) -> None:
        view = memoryview(bytearray(PIECE))
        hashed = 0
        while True:
            with self.moved:
                while self.written == hashed and not self.finished:
                    self.moved.wait()
                upto, last = self.written, self.finished
            while hashed < upto:
                n = os.preadv(self.fd, [view[: min(PIECE, upto - hashed)]], hashed)
                self.sha.update(view[:n])
                hashed += n
            if last and hashed == upto:
                return


def receive(conn: socket.socket, path: str) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        got = conn.recv(65536)
        if not got:
            raise ConnectionError("closed before the headers ended")
        head += got
    header_block, start = head.split(b"\r\n\r\n", 1)
    length = None
    for line in header_block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("no Content-Length")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    reader = os.open(path, os.O_RDONLY)
    try:
        hasher = Hasher(reader)
        hasher.start()
        os.write(fd, start)
        hasher.advance(len(start))
        left = length - len(start)
        view = memoryview(bytearray(PIECE))
        while left > 0:
            n = conn.recv_into(view[: min(PIECE, left)])
            if n == 0:
                raise ConnectionError("closed before the body ended")
            os.write(fd, view[:n])
            hasher.advance(n)
            left -= n
        return hasher.finish().encode()
    finally:
        os.close(fd)
        os.close(reader)


def main() -> None:
    target = os.path.join(sys.argv[1], "received.bin")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                body = receive(conn, target)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except (ConnectionError, ValueError) as err:
                print(f"receive-server.py: {err}", file=sys.stderr)


main()
