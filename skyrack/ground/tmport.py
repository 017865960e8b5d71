"""The raw packet port: every packet the ground accepted, back to back on a TCP stream.

A client that connects gets the packets of the ground archive's `packets` table in the order
they were received, then each new one as it lands: CCSDS space packets with nothing around
them, which is what Yamcs' `TcpTmDataLink` and OpenC3 COSMOS' `LengthProtocol` read (they
split the stream with the primary header's 16-bit length field: bytes 4-5, value + 7 = the
packet's length). `skyrack dictionary --xtce` gives those tools the packets' layout.

`dump=False` (`--tm-realtime-only`) sends only packets marked realtime, for a tool that keeps
one stream; Yamcs can tell the two apart by the flag byte after the store index.
"""

from __future__ import annotations

import socket
import socketserver
import sqlite3
import threading
import time
from pathlib import Path

POLL_S = 0.2
BATCH = 500


class PacketPort:
    def __init__(
        self, archive: Path, host: str = "127.0.0.1", port: int = 10015, realtime_only: bool = False
    ):
        self.archive = archive
        self.realtime_only = realtime_only
        self._stop = threading.Event()
        port_owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                port_owner._stream(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((host, port), Handler, bind_and_activate=True)
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="tm-port", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def _stream(self, sock: socket.socket) -> None:
        db = sqlite3.connect(f"file:{self.archive}?mode=ro", uri=True, timeout=10)
        last = 0
        where = " AND dump = 0" if self.realtime_only else ""
        try:
            while not self._stop.is_set():
                try:
                    rows = db.execute(
                        f"SELECT id, raw FROM packets WHERE id > ?{where} ORDER BY id LIMIT ?", (last, BATCH)
                    ).fetchall()
                except sqlite3.OperationalError:  # the archive has no packets table yet
                    rows = []
                if rows:
                    sock.sendall(b"".join(raw for _, raw in rows))
                    last = rows[-1][0]
                else:
                    time.sleep(POLL_S)
        except OSError:  # the client went away
            pass
        finally:
            db.close()


def split_stream(data: bytes) -> tuple[list[bytes], bytes]:
    """Packets in a byte stream, by the CCSDS length field (as the ground tools read it), and
    the incomplete rest."""
    out, pos = [], 0
    while len(data) - pos >= 6:
        length = int.from_bytes(data[pos + 4 : pos + 6], "big") + 7
        if len(data) - pos < length:
            break
        out.append(data[pos : pos + length])
        pos += length
    return out, data[pos:]
