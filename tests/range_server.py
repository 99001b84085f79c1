"""A static HTTP server with single-range ``Range: bytes=a-b`` support (206 answers), which
Python's own handler lacks and GDAL's /vsicurl/ needs; for tests/test_remote_inputs.py.

``python tests/range_server.py FOLDER LOG``: serves FOLDER on 127.0.0.1 (a free port, printed
first on stdout), appending each request to LOG as a JSON line ``[method, path, range]``.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import re
import sys
from pathlib import Path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    log_path: Path

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        with open(self.log_path, "a") as log:
            log.write(json.dumps([self.command, self.path, self.headers.get("Range")]) + "\n")
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().send_head()  # listings and 404s as usual
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self.send_error(416)
                return None
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


def main(folder: str, log: str) -> None:
    handler = type("Handler", (RangeHandler,), {"log_path": Path(log)})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=folder))
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
