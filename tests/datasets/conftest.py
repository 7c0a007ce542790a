import functools
import http.server
import threading

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """SHENJING_HOME in a temporary folder; proxies off so 127.0.0.1 is reached directly."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


class _Server:
    def __init__(self, folder):
        self.folder, self.hits = folder, []
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                if self.path.startswith("/short/"):  # announce 1000 bytes, send 10, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"x" * 10)
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(tmp_path, home):
    """A local HTTP server on 127.0.0.1 serving tmp_path/srv/files/ at `server.url`.

    Paths under /short/ answer with a body cut short of its Content-Length.
    """
    (tmp_path / "srv" / "files").mkdir(parents=True)
    srv = _Server(tmp_path / "srv")
    srv.files = tmp_path / "srv" / "files"
    yield srv
    srv.close()
