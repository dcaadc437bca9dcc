"""The UniRef downloader against local servers only (file:// and 127.0.0.1)."""

import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import download_uniref  # noqa: E402

PAYLOAD = gzip.compress(b"".join(b">UniRef50_X%d\nMKV\n" % i for i in range(5000)), mtime=0)
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def _release(tmp_path, md5=MD5):
    base = tmp_path / "release"
    (base / "uniref50").mkdir(parents=True)
    (base / "uniref50" / "uniref50.fasta.gz").write_bytes(PAYLOAD)
    (base / "uniref50" / "RELEASE.metalink").write_text(
        '<?xml version="1.0"?><metalink xmlns="http://www.metalinker.org/"><files>'
        f'<file name="uniref50.fasta.gz"><size>{len(PAYLOAD)}</size><verification>'
        f'<hash type="md5">{md5}</hash></verification></file></files></metalink>')
    return base


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with single-range ``Range: bytes=N-`` support; records the ranges."""

    ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path):
    base = _release(tmp_path)
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(base), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.ranges = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_file_url_download_and_verify(tmp_path):
    base = _release(tmp_path)
    dest = tmp_path / "dl"
    assert download_uniref.main(["uniref50", "--dest", str(dest), "--base-url",
                                 base.as_uri(), "--quiet"]) == 0
    assert (dest / "uniref50.fasta.gz").read_bytes() == PAYLOAD
    # resume a partial file from a file:// URL
    (dest / "uniref50.fasta.gz").unlink()
    (dest / "uniref50.fasta.gz.part").write_bytes(PAYLOAD[:1000])
    assert download_uniref.main(["uniref50", "--dest", str(dest), "--base-url",
                                 base.as_uri(), "--quiet"]) == 0
    assert (dest / "uniref50.fasta.gz").read_bytes() == PAYLOAD


def test_http_resume_uses_range(tmp_path, server):
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "uniref50.fasta.gz.part").write_bytes(PAYLOAD[:1234])
    assert download_uniref.main(["uniref50", "--dest", str(dest), "--base-url", server,
                                 "--quiet"]) == 0
    assert (dest / "uniref50.fasta.gz").read_bytes() == PAYLOAD
    assert "bytes=1234-" in _RangeHandler.ranges
    assert not (dest / "uniref50.fasta.gz.part").exists()


def test_checksum_mismatch_is_an_error(tmp_path, capsys):
    base = _release(tmp_path, md5="0" * 32)
    dest = tmp_path / "dl"
    assert download_uniref.main(["uniref50", "--dest", str(dest), "--base-url",
                                 base.as_uri(), "--quiet"]) == 1
    assert f"md5 {MD5} != expected {'0' * 32}" in capsys.readouterr().err
    assert not (dest / "uniref50.fasta.gz").exists()
    assert (dest / "uniref50.fasta.gz.corrupt").exists()


def test_downloaded_file_prepares(tmp_path, server):
    dest = tmp_path / "dl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "download_uniref.py"),
                          "uniref50", "--dest", str(dest), "--base-url", server, "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    from protperf.data.preparation.pipeline import prepare
    manifest = prepare(dest / "uniref50.fasta.gz", tmp_path / "prep")
    assert manifest["sequences_kept"] == 5000
