"""A one-file FUSE file system whose reads block until released. Standard library only.

    python3 blocking_fuse.py MOUNTPOINT CONTENT_FILE CONTROL_DIR HOLD_SECONDS [OWNER_UID [every-other]]

Mounts (as root, straight through mount(2) on /dev/fuse, no libfuse) a
read-only directory holding one file, ``krb5cc``, with the bytes of
CONTENT_FILE, owned by OWNER_UID (default root). The first READ of it is
held (with ``every-other``: every READ of every second open, the first
open answered):
CONTROL_DIR/read-started is created, and the reply waits until
CONTROL_DIR/release exists or HOLD_SECONDS pass. Every other request is answered meanwhile. Prints "ready" once mounted;
exits when the file system is unmounted. What a hung NFS server or a hostile
FUSE mount looks like to a reader: a read(2) that does not return.

Used by tests/test_hostile_server.py; it runs in its own process, because a
reader that holds the GIL would otherwise stop the server that should answer it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import sys
import time

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR = 1, 2, 3
FUSE_OPEN, FUSE_READ, FUSE_STATFS, FUSE_RELEASE = 14, 15, 17, 18
FUSE_FLUSH, FUSE_INIT, FUSE_OPENDIR, FUSE_READDIR, FUSE_RELEASEDIR = 25, 26, 27, 28, 29
FUSE_ACCESS, FUSE_INTERRUPT, FUSE_DESTROY, FUSE_BATCH_FORGET = 34, 36, 38, 42
NO_REPLY = {FUSE_FORGET, FUSE_INTERRUPT, FUSE_BATCH_FORGET}
FOPEN_DIRECT_IO = 1
ROOT, FILE = 1, 2
IN_HEADER = struct.Struct("<IIQQIIII")  # len, opcode, unique, nodeid, uid, gid, pid, padding
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # fuse_attr (88 bytes)
MS_NOSUID, MS_NODEV = 2, 4


def attr(node: int, size: int, owner: int = 0) -> bytes:
    now = int(time.time())
    mode = 0o40755 if node == ROOT else 0o100600
    uid = owner if node == FILE else 0
    return ATTR.pack(node, size, (size + 511) // 512, now, now, now, 0, 0, 0, mode, 1, uid, uid, 0, 4096, 0)


def main() -> None:
    mountpoint, content_file, control, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    owner = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    every_other = len(sys.argv) > 6 and sys.argv[6] == "every-other"
    with open(content_file, "rb") as f:
        content = f.read()
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(b"pamkrb-test", mountpoint.encode(), b"fuse.pamkrb-test", MS_NOSUID | MS_NODEV, options) != 0:
        sys.exit(f"mount: {os.strerror(ctypes.get_errno())}")
    print("ready", flush=True)

    held: list[tuple[float, int, bytes]] = []  # (since, unique, reply) of the READs being held
    reads = opens = 0

    def reply(unique: int, body: bytes = b"", error: int = 0) -> None:
        try:
            os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body)
        except OSError as e:  # ENOENT: the request was interrupted meanwhile
            if e.errno != errno.ENOENT:
                raise

    while True:
        released = os.path.exists(f"{control}/release")
        while held and (released or time.monotonic() - held[0][0] > hold):
            _since, unique, data = held.pop(0)
            reply(unique, data)
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            continue
        try:
            request = os.read(fd, (1 << 20) + 4096)
        except OSError as e:
            if e.errno == errno.ENODEV:  # unmounted
                return
            if e.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                continue
            raise
        _, opcode, unique, node, *_ = IN_HEADER.unpack_from(request)
        body = request[IN_HEADER.size :]
        if opcode in NO_REPLY:
            continue
        if opcode == FUSE_INIT:
            _major, minor, readahead, _flags = struct.unpack_from("<IIII", body)
            reply(
                unique,
                struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), readahead, 0, 16, 12, 1 << 17, 1, 0, 0, 0, *[0] * 7),
            )
        elif opcode == FUSE_LOOKUP:
            if node == ROOT and body.split(b"\0", 1)[0] == b"krb5cc":
                reply(unique, struct.pack("<QQQQII", FILE, 0, 0, 0, 0, 0) + attr(FILE, len(content), owner))
            else:
                reply(unique, error=errno.ENOENT)
        elif opcode == FUSE_GETATTR:
            reply(unique, struct.pack("<QII", 0, 0, 0) + attr(node, len(content) if node == FILE else 0, owner))
        elif opcode in (FUSE_OPEN, FUSE_OPENDIR):
            opens += opcode == FUSE_OPEN
            reply(unique, struct.pack("<QII", opens, FOPEN_DIRECT_IO if opcode == FUSE_OPEN else 0, 0))
        elif opcode == FUSE_READ:
            fh, offset, size = struct.unpack_from("<QQI", body)
            data = content[offset : offset + size]
            reads += 1
            serve = fh % 2 == 1 if every_other else reads > 1
            if serve:
                reply(unique, data)
            else:
                held.append((time.monotonic(), unique, data))
                with open(f"{control}/read-started", "w"):
                    pass
        elif opcode == FUSE_STATFS:
            reply(unique, struct.pack("<QQQQQIIII6I", 0, 0, 0, 0, 0, 4096, 255, 4096, 0, *[0] * 6))
        elif opcode in (FUSE_RELEASE, FUSE_RELEASEDIR, FUSE_FLUSH, FUSE_ACCESS, FUSE_READDIR):
            reply(unique)
        elif opcode == FUSE_DESTROY:
            reply(unique)
            return
        else:
            reply(unique, error=errno.ENOSYS)


if __name__ == "__main__":
    main()
