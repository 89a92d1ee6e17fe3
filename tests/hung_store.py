"""A store that hangs: a TCP server on 127.0.0.1 that accepts every connection, reads what it
is sent and never answers (a store whose disk or process is stuck), counting the connections it
accepted. The logging checks use it to count the requests a store call makes and to measure the
delay a hung store adds to a try's exit."""

import socket
import threading


class HungServer:
    def __init__(self):
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.accepted += 1
                self._held.append(conn)

    def count(self) -> int:
        with self._lock:
            return self.accepted

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # (wakes the blocked accept)
        except OSError:
            pass
        self._server.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._held:
                conn.close()
        return False
