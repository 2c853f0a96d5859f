"""Tests for engine.data.download, .fetch and .archive; downloads go to a throw-away HTTP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
import uuid
import zipfile
from pathlib import Path

import pytest

from engine.data import download as dl
from engine.data import fetch as fetch_module
from engine.data.archive import ArchiveError, safe_extract
from engine.data.download import (
    MVTEC_CATEGORIES,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    add_download_arguments,
    download_category,
    official_url,
    run_download,
)

CATEGORY = "hazelnut"


# --------------------------------------------------------------------------
# Fixtures: a tiny MVTec-like archive and a Range-aware HTTP server
# --------------------------------------------------------------------------


def _png_like(seed: int, size: int = 3000) -> bytes:
    """Deterministic, poorly compressible bytes with a PNG signature."""
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    state = seed * 2654435761 % 2**32 or 1
    while len(out) < size:
        state = (1103515245 * state + 12345) % 2**31
        out += state.to_bytes(4, "little")
    return bytes(out[:size])


TREE: dict[str, bytes] = {
    f"{CATEGORY}/train/good/000.png": _png_like(1),
    f"{CATEGORY}/train/good/001.png": _png_like(2),
    f"{CATEGORY}/test/good/000.png": _png_like(3),
    f"{CATEGORY}/test/crack/000.png": _png_like(4),
    f"{CATEGORY}/ground_truth/crack/000_mask.png": _png_like(5, 500),
    f"{CATEGORY}/license.txt": b"test data, not the real MVTec images\n",
}


def _build_tar(path: Path, files: dict[str, bytes], mode: str = "w:xz") -> Path:
    with tarfile.open(path, mode) as tar:
        dirs: set[str] = set()
        for name in files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    return _build_tar(tmp_path / f"{CATEGORY}.tar.xz", TREE)


class _State:
    def __init__(self) -> None:
        self.payload = b""
        self.path = "/"
        self.support_range = True
        self.drop_after: int | None = None  # bytes sent before hanging up (first request only)
        self.fail_first_with: int | None = None  # HTTP status for the first request only
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "TestServer/1"

    def log_message(self, format, *args):  # noqa: A002 - keep the test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        state: _State = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            first = not state.requests
            state.requests.append({k.lower(): v for k, v in self.headers.items()})
        if self.path != state.path:
            self.send_error(404)
            return
        if first and state.fail_first_with:
            self.send_error(state.fail_first_with)
            return

        data = state.payload
        start = 0
        range_header = self.headers.get("Range")
        if state.support_range and range_header and range_header.startswith("bytes="):
            start = int(range_header[len("bytes=") :].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/x-xz")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if first and state.drop_after is not None:
            self.wfile.write(body[: state.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = _State()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy_no_sleep(monkeypatch):
    """Talk to 127.0.0.1 directly and skip retry pauses."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fetch_module, "RETRY_BACKOFF", 0.0)


def _serve(server, payload: bytes, name: str = f"{CATEGORY}.tar.xz") -> str:
    server.state.payload = payload
    server.state.path = f"/files/{name}"
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/files/{name}"


def _closed_port_url() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/{CATEGORY}.tar.xz"


def _assert_tree(root: Path) -> None:
    assert root.is_dir()
    for name, data in TREE.items():
        assert (root.parent / name).read_bytes() == data, name
    found = sorted(p.relative_to(root.parent).as_posix() for p in root.rglob("*") if p.is_file())
    assert found == sorted(TREE)


def _leftovers(data_dir: Path) -> list[str]:
    """Anything in data_dir besides the category folder and an empty .downloads."""
    names = []
    for p in data_dir.iterdir():
        if p.name == CATEGORY:
            continue
        if p.name == ".downloads" and not any(p.iterdir()):
            continue
        names.append(p.name)
    return names


# --------------------------------------------------------------------------
# URLs and constants
# --------------------------------------------------------------------------


def test_categories_and_official_urls():
    assert len(MVTEC_CATEGORIES) == 15 == len(set(MVTEC_CATEGORIES))
    for category in MVTEC_CATEGORIES:
        url = official_url(category)
        assert url.startswith("https://www.mydrive.ch/shares/")
        assert url.endswith(f"/download/{dl._OFFICIAL_FILES[category][1]}/{category}.tar.xz")
    assert len({official_url(c) for c in MVTEC_CATEGORIES}) == 15
    with pytest.raises(ValueError, match="unknown MVTec AD category"):
        official_url("banana")
    # the one known digest is the full data set's, in the lower-case form that downloads are compared with
    assert set(dl.KNOWN_SHA256) == {dl.FULL_DATASET_URL.rsplit("/", 1)[-1]}
    for digest in dl.KNOWN_SHA256.values():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------


def test_download_and_extract(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    data_dir = tmp_path / "data"

    result = download_category(CATEGORY, data_dir, url=url, progress=False)

    assert result == data_dir / CATEGORY
    _assert_tree(result)
    assert _leftovers(data_dir) == []
    assert len(server.state.requests) == 1
    assert "range" not in server.state.requests[0]


def test_download_with_progress_bar_and_matching_sha(server, archive, tmp_path, capsys):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    digest = hashlib.sha256(payload).hexdigest().upper()  # case does not matter

    result = download_category(CATEGORY, tmp_path / "data", url=url, sha256=digest, progress=True)

    _assert_tree(result)
    assert f"{CATEGORY}.tar.xz" in capsys.readouterr().err  # tqdm writes to stderr


def test_complete_category_is_not_downloaded_again(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / CATEGORY / "train" / "good").mkdir(parents=True)
    (data_dir / CATEGORY / "test").mkdir()
    # The URL points at nothing: any network use would fail.
    assert download_category(CATEGORY, data_dir, url=_closed_port_url(), progress=False) == data_dir / CATEGORY
    assert not (data_dir / ".downloads").exists()


def test_interrupted_download_resumes_with_range(server, archive, tmp_path):
    payload = archive.read_bytes()
    cut = len(payload) // 2
    url = _serve(server, payload)
    server.state.drop_after = cut

    result = download_category(CATEGORY, tmp_path / "data", url=url, retries=2, progress=False)

    _assert_tree(result)
    requests = server.state.requests
    assert len(requests) == 2
    assert "range" not in requests[0]
    assert requests[1]["range"] == f"bytes={cut}-"


def test_leftover_part_file_is_resumed(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    data_dir = tmp_path / "data"
    part = data_dir / ".downloads" / f"{CATEGORY}.tar.xz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[:1000])

    result = download_category(CATEGORY, data_dir, url=url, progress=False)

    _assert_tree(result)
    assert [r.get("range") for r in server.state.requests] == ["bytes=1000-"]
    assert not part.exists()


def test_fully_downloaded_part_file_is_accepted_on_416(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    data_dir = tmp_path / "data"
    part = data_dir / ".downloads" / f"{CATEGORY}.tar.xz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload)

    _assert_tree(download_category(CATEGORY, data_dir, url=url, progress=False))
    assert [r.get("range") for r in server.state.requests] == [f"bytes={len(payload)}-"]


def test_server_ignoring_range_restarts_from_zero(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    server.state.support_range = False
    data_dir = tmp_path / "data"
    part = data_dir / ".downloads" / f"{CATEGORY}.tar.xz.part"
    part.parent.mkdir(parents=True)
    stale = b"stale bytes that must not survive" * 10
    part.write_bytes(stale)

    result = download_category(CATEGORY, data_dir, url=url, sha256=hashlib.sha256(payload).hexdigest(), progress=False)

    _assert_tree(result)
    assert server.state.requests[0]["range"] == f"bytes={len(stale)}-"


def test_interrupted_download_without_range_support(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    server.state.support_range = False
    server.state.drop_after = 700

    _assert_tree(download_category(CATEGORY, tmp_path / "data", url=url, progress=False))
    assert len(server.state.requests) == 2


def test_server_error_is_retried(server, archive, tmp_path):
    url = _serve(server, archive.read_bytes())
    server.state.fail_first_with = 503

    _assert_tree(download_category(CATEGORY, tmp_path / "data", url=url, retries=1, progress=False))
    assert len(server.state.requests) == 2


def test_retries_exhausted(server, archive, tmp_path):
    url = _serve(server, archive.read_bytes())
    server.state.fail_first_with = 503

    with pytest.raises(DownloadError) as info:
        download_category(CATEGORY, tmp_path / "data", url=url, retries=0, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "HTTP 503" in message and url in message


def test_not_found_is_not_retried(server, archive, tmp_path):
    url = _serve(server, archive.read_bytes())
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_category(CATEGORY, tmp_path / "data", url=url + ".missing", retries=3, progress=False)
    assert len(server.state.requests) == 1


def test_wrong_sha256_raises_and_leaves_no_archive(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    data_dir = tmp_path / "data"
    wrong = "0" * 64

    with pytest.raises(ChecksumError) as info:
        download_category(CATEGORY, data_dir, url=url, sha256=wrong, progress=False)

    message = str(info.value)
    assert isinstance(info.value, DownloadError)
    assert url in message and wrong in message and hashlib.sha256(payload).hexdigest() in message
    assert "\n" not in message
    assert not (data_dir / CATEGORY).exists()
    assert list((data_dir / ".downloads").iterdir()) == []
    assert _leftovers(data_dir) == []


def test_malformed_sha256_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        download_category(CATEGORY, tmp_path, url=_closed_port_url(), sha256="abc", progress=False)


def test_whole_dataset_layout_is_accepted(server, tmp_path):
    nested = {f"mvtec_anomaly_detection/{k}": v for k, v in TREE.items()}
    nested["mvtec_anomaly_detection/grid/train/good/000.png"] = b"grid"
    nested["mvtec_anomaly_detection/grid/test/good/000.png"] = b"grid"
    payload = _build_tar(tmp_path / "all.tar.gz", nested, "w:gz").read_bytes()
    url = _serve(server, payload, "all.tar.gz")
    data_dir = tmp_path / "data"

    _assert_tree(download_category(CATEGORY, data_dir, url=url, progress=False))
    assert (data_dir / "grid" / "train" / "good" / "000.png").read_bytes() == b"grid"


def test_fetch_keeps_a_verified_file_and_replaces_a_wrong_one(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    path = tmp_path / "downloads" / f"{CATEGORY}.tar.xz"
    digest = hashlib.sha256(payload).hexdigest()

    assert fetch_module.fetch(url, path, sha256=digest, progress=False) == path
    assert fetch_module.fetch(url, path, sha256=digest, progress=False) == path
    assert len(server.state.requests) == 1  # the verified file was kept, no second request

    path.write_bytes(b"left over from a different run")
    fetch_module.fetch(url, path, sha256=digest, progress=False)
    assert path.read_bytes() == payload
    assert len(server.state.requests) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .part left


def test_damaged_archive_is_reported_and_deleted(server, tmp_path):
    url = _serve(server, b"\xfd7zXZ\x00 this is not really xz data" * 20)
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError, match="damaged") as info:
        download_category(CATEGORY, data_dir, url=url, progress=False)
    assert "\n" not in str(info.value)
    assert list((data_dir / ".downloads").iterdir()) == []
    assert not (data_dir / CATEGORY).exists()
    assert _leftovers(data_dir) == []


# --------------------------------------------------------------------------
# No network
# --------------------------------------------------------------------------


def test_closed_port_raises_one_line_download_error(tmp_path):
    url = _closed_port_url()
    data_dir = tmp_path / "data"

    with pytest.raises(DownloadError) as info:
        download_category(CATEGORY, data_dir, url=url, retries=3, progress=False)

    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "\n" not in message
    assert url in message
    assert f"{CATEGORY}.tar.xz" in message
    assert str(data_dir / CATEGORY / "train" / "good") in message
    assert not (data_dir / CATEGORY).exists()


def test_dns_failure_raises_download_error(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DownloadError, match="cannot resolve host") as info:
        download_category(CATEGORY, tmp_path / "data", url="http://mvtec.invalid/hazelnut.tar.xz", progress=False)
    assert "\n" not in str(info.value)


def test_silent_server_times_out(tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections complete in the backlog but never get an answer
    port = listener.getsockname()[1]
    try:
        with pytest.raises(DownloadError, match="timed out.*gave up after 2 attempts"):
            download_category(
                CATEGORY,
                tmp_path / "data",
                url=f"http://127.0.0.1:{port}/hazelnut.tar.xz",
                retries=1,
                timeout=0.2,
                progress=False,
            )
    finally:
        listener.close()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_download_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults():
    args = _parse([CATEGORY])
    assert args.category == CATEGORY
    assert args.url is None and args.sha256 is None
    assert args.data_dir == Path("data")
    assert args.retries == 3


def test_cli_failure_prints_one_line_and_returns_2(tmp_path, capsys):
    data_dir = tmp_path / "data"
    args = _parse([CATEGORY, "--url", _closed_port_url(), "--data-dir", str(data_dir), "--retries", "1"])

    assert run_download(args) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert str(data_dir / CATEGORY / "train" / "good") in lines[0]


def test_cli_success(server, archive, tmp_path, capsys):
    url = _serve(server, archive.read_bytes())
    data_dir = tmp_path / "data"
    args = _parse([CATEGORY, "--url", url, "--data-dir", str(data_dir), "--no-progress"])

    assert run_download(args) == 0
    assert capsys.readouterr().out.strip() == str(data_dir / CATEGORY)
    _assert_tree(data_dir / CATEGORY)


# --------------------------------------------------------------------------
# safe_extract
# --------------------------------------------------------------------------

SMALL = {"cat/train/good/a.png": b"aaa", "cat/test/good/b.png": b"bbbb"}


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tar.bz2", "w:bz2")])
def test_safe_extract_tar_formats(tmp_path, suffix, mode):
    src = _build_tar(tmp_path / f"a{suffix}", SMALL, mode)
    dest = tmp_path / "out"
    safe_extract(src, dest)
    for name, data in SMALL.items():
        assert (dest / name).read_bytes() == data


def test_safe_extract_drops_setuid_and_group_write(tmp_path):
    src = tmp_path / "modes.tar"
    with tarfile.open(src, "w") as tar:
        info = tarfile.TarInfo("cat/tool")
        info.size = 2
        info.mode = 0o6777  # setuid, setgid, writable by all
        tar.addfile(info, io.BytesIO(b"#!"))
    safe_extract(src, tmp_path / "out")
    assert (tmp_path / "out" / "cat" / "tool").stat().st_mode & 0o7777 == 0o755


def test_zip_is_refused_with_one_line_error(server, tmp_path):
    src = tmp_path / "a.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for name, data in SMALL.items():
            zf.writestr(name, data)
    dest = tmp_path / "out"

    with pytest.raises(ArchiveError) as info:
        safe_extract(src, dest)
    message = str(info.value)
    assert "\n" not in message
    assert str(src) in message and "zip" in message and ".tar.xz" in message
    assert not dest.exists()

    # through a download the same line reaches the user, and the useless archive is deleted
    url = _serve(server, src.read_bytes(), "hazelnut.zip")
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_category(CATEGORY, data_dir, url=url, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "hazelnut.zip" in message and "zip archive" in message and ".tar.xz" in message and url in message
    assert _leftovers(data_dir) == []  # .downloads is empty
    assert not (data_dir / CATEGORY).exists()


def _evil_tar(path: Path, kind: str, outside: Path) -> str:
    """Write a tar whose first member is harmless and second is ``kind``; return the bad name."""
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("cat/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if kind == "dotdot":
            bad = tarfile.TarInfo("cat/../../evil.txt")
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "absolute":
            bad = tarfile.TarInfo(str(outside))
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "symlink":
            bad = tarfile.TarInfo("cat/link")
            bad.type = tarfile.SYMTYPE
            bad.linkname = str(outside.parent)
            tar.addfile(bad)
        elif kind == "hardlink":
            bad = tarfile.TarInfo("cat/hard")
            bad.type = tarfile.LNKTYPE
            bad.linkname = "cat/ok.txt"
            tar.addfile(bad)
        elif kind == "device":
            bad = tarfile.TarInfo("cat/null")
            bad.type = tarfile.CHRTYPE
            bad.devmajor, bad.devminor = 1, 3
            tar.addfile(bad)
        elif kind == "fifo":
            bad = tarfile.TarInfo("cat/pipe")
            bad.type = tarfile.FIFOTYPE
            tar.addfile(bad)
        else:  # pragma: no cover
            raise AssertionError(kind)
    return bad.name


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_safe_extract_refuses_malicious_tar(tmp_path, kind):
    outside = Path("/tmp") / f"pixel-evidence-evil-{uuid.uuid4().hex}.txt"
    src = _evil_tar(tmp_path / "evil.tar", kind, outside)
    work = tmp_path / "work"
    dest = work / "dest"
    work.mkdir()

    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(tmp_path / "evil.tar", dest)

    assert info.value.member == src
    assert src in str(info.value)
    assert not dest.exists()  # nothing written inside, not even the harmless member
    assert list(work.iterdir()) == []  # nothing written next to it
    assert not (tmp_path / "evil.txt").exists()
    assert not outside.exists()


def test_download_refuses_malicious_archive(server, tmp_path):
    src = tmp_path / "evil.tar"
    _evil_tar(src, "symlink", tmp_path / "x")
    url = _serve(server, src.read_bytes(), "evil.tar")
    data_dir = tmp_path / "data"

    with pytest.raises(UnsafeArchiveError):
        download_category("cat", data_dir, url=url, progress=False)
    assert not (data_dir / "cat").exists()
    assert [p.name for p in data_dir.iterdir()] == [".downloads"]
    assert list((data_dir / ".downloads").iterdir()) == []
