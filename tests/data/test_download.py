"""Tests for pixel_evidence.data.download, .fetch, .archive and .mvtec_sources; downloads go to a throw-away HTTP
server on 127.0.0.1, and the full data set is a two-category stand-in built here."""

from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import uuid
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from pixel_evidence.cli import main as cli_main
from pixel_evidence.data import fetch as fetch_module
from pixel_evidence.data import mvtec_sources as sources
from pixel_evidence.data.archive import ArchiveError, extract_matching
from pixel_evidence.data.download import (ChecksumError, DownloadError, UnsafeArchiveError, add_download_arguments,
                                          default_url, download_category, install_category, run_download)
from pixel_evidence.files import scratch_folder

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
        self.content_type = "application/x-xz"
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
        self.send_header("Content-Type", state.content_type)
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


def _png(seed: int, size: int = 4) -> bytes:
    """A real, tiny PNG of deterministic colours."""
    pixels = bytes((seed * 37 + i * 11) % 256 for i in range(size * size * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (size, size), pixels).save(out, format="PNG")
    return out.getvalue()


def _category_files(category: str, seed: int) -> dict[str, bytes]:
    return {
        f"{category}/train/good/000.png": _png(seed),
        f"{category}/test/good/000.png": _png(seed + 1),
        f"{category}/test/crack/000.png": _png(seed + 2),
        f"{category}/ground_truth/crack/000_mask.png": _png(seed + 3),
    }


# The full data set's stand-in: two categories, with the other one last so that a failure in it
# comes after the asked category has been written.
FULL = {**_category_files(CATEGORY, 10), **_category_files("grid", 20), "license.txt": b"stand-in\n",
        "grid/train/good/001.png": _png_like(7, 200_000)}
NESTINGS = {"nested": sources.FULL_ARCHIVE_ROOT + "/", "top": ""}


def _full_archive(folder: Path, nesting: str = "nested") -> Path:
    """The stand-in written to ``folder`` (created), the real archive's name and nesting."""
    folder.mkdir(parents=True, exist_ok=True)
    root = NESTINGS[nesting]
    return _build_tar(folder / sources.FULL_ARCHIVE_NAME, {root + name: data for name, data in FULL.items()})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files_below(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root.parent).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _one_line(message: str, *parts: str) -> None:
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def _by_hand_parts(category: str, data_dir: Path) -> tuple[str, str]:
    return (sources.DOWNLOADS_PAGE,
            f"then run: pixel-evidence data download {category} --data-dir {data_dir} --archive PATH")


# --------------------------------------------------------------------------
# URLs and constants
# --------------------------------------------------------------------------


def test_default_urls_are_the_latest_known_links():
    assert len(sources.MVTEC_CATEGORIES) == 15 == len(set(sources.MVTEC_CATEGORIES)) == len(sources.CATEGORY_URLS)
    share = "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download/"
    for category in sources.MVTEC_CATEGORIES:
        url = default_url(category)
        assert url.startswith(share) and url.endswith(f"/{category}.tar.xz")
    assert default_url(CATEGORY) == share + "420937545-1629959162/hazelnut.tar.xz"
    assert default_url(CATEGORY, full=True) == share + "420938113-1629960298/mvtec_anomaly_detection.tar.xz"
    assert len({default_url(c) for c in sources.MVTEC_CATEGORIES}) == 15
    assert sources.FULL_ARCHIVE_SHA256 == "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
    with pytest.raises(ValueError, match="unknown MVTec AD category 'banana'.*--url or --archive"):
        default_url("banana")


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

    assert isinstance(info.value, DownloadError)
    _one_line(str(info.value), url, wrong, hashlib.sha256(payload).hexdigest(), "was deleted",
              *_by_hand_parts(CATEGORY, data_dir))
    assert not (data_dir / CATEGORY).exists()
    assert list((data_dir / ".downloads").iterdir()) == []
    assert _leftovers(data_dir) == []


def test_malformed_sha256_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        download_category(CATEGORY, tmp_path, url=_closed_port_url(), sha256="abc", progress=False)


def test_full_dataset_fetched_is_kept_for_the_next_category(server, tmp_path, monkeypatch):
    full = _full_archive(tmp_path / "src")
    monkeypatch.setattr(sources, "FULL_ARCHIVE_SHA256", _sha(full))
    monkeypatch.setattr(sources, "FULL_ARCHIVE_URL", _serve(server, full.read_bytes(), sources.FULL_ARCHIVE_NAME))
    data_dir = tmp_path / "data"

    assert download_category(CATEGORY, data_dir, full=True, progress=False) == data_dir / CATEGORY
    assert not (data_dir / "grid").exists()  # only the category asked for
    kept = data_dir / ".downloads" / sources.FULL_ARCHIVE_NAME
    assert kept.read_bytes() == full.read_bytes()

    download_category("grid", data_dir, full=True, progress=False)
    assert len(server.state.requests) == 1  # the kept archive served the second category
    assert _files_below(data_dir / "grid") == {k: v for k, v in FULL.items() if k.startswith("grid/")}


def test_fetch_keeps_a_complete_file_without_network(server, archive, tmp_path):
    payload = archive.read_bytes()
    url = _serve(server, payload)
    path = tmp_path / "downloads" / f"{CATEGORY}.tar.xz"

    assert fetch_module.fetch(url, path, progress=False) == path
    assert fetch_module.fetch(url, path, progress=False) == path
    assert len(server.state.requests) == 1  # the complete file was kept, no second request
    assert path.read_bytes() == payload
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

    assert isinstance(info.value, RuntimeError)
    _one_line(str(info.value), f"could not download {url} (connection refused)", *_by_hand_parts(CATEGORY, data_dir))
    assert not (data_dir / CATEGORY).exists()


def _html_with_archive_type(server) -> str:
    """A web page sent as if it were the archive: only its content gives it away."""
    url = _serve(server, b"<!DOCTYPE html><html><body>Please fill in the form</body></html>")
    server.state.content_type = "application/octet-stream"
    return url


DEFAULT_LINK_FAILURES = {
    "404": (lambda server: _serve(server, b"") + ".gone", "(HTTP 404 Not Found)"),
    "html": (lambda server: (_serve(server, b"<html><body>expired</body></html>"),
                             setattr(server.state, "content_type", "text/html; charset=utf-8"))[0],
             "(server sent an HTML page instead of the file: the link has expired or needs a browser)"),
    "html-as-archive": (_html_with_archive_type, "is a web page (HTML), not a"),
    "dns": (lambda server: "http://nonexistent.invalid/hazelnut.tar.xz", "(cannot resolve host:"),
}


@pytest.mark.parametrize("failure", DEFAULT_LINK_FAILURES)
def test_failing_default_link_gives_one_line_naming_the_downloads_page_and_the_archive_command(
        failure, server, tmp_path, monkeypatch, capsys):
    make_url, reason = DEFAULT_LINK_FAILURES[failure]
    url = make_url(server)
    monkeypatch.setitem(sources.CATEGORY_URLS, CATEGORY, url)
    data_dir = tmp_path / "data"

    assert run_download(_parse([CATEGORY, "--data-dir", str(data_dir), "--no-progress"])) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    _one_line(captured.err.strip(), url, reason, f"download {CATEGORY}.tar.xz or the full mvtec_anomaly_detection.tar.xz",
              *_by_hand_parts(CATEGORY, data_dir))
    assert not (data_dir / CATEGORY).exists()
    assert not (data_dir / ".downloads").exists() or list((data_dir / ".downloads").iterdir()) == []


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
    assert args.url is None and args.sha256 is None and args.archive is None and not args.full
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
    _one_line(lines[0], *_by_hand_parts(CATEGORY, data_dir))


def test_cli_source_options_exclude_each_other(tmp_path):
    with pytest.raises(SystemExit):
        _parse([CATEGORY, "--url", "http://127.0.0.1/x.tar.xz", "--archive", str(tmp_path / "x.tar.xz")])


def test_cli_success(server, archive, tmp_path, capsys):
    url = _serve(server, archive.read_bytes())
    data_dir = tmp_path / "data"
    args = _parse([CATEGORY, "--url", url, "--data-dir", str(data_dir), "--no-progress"])

    assert run_download(args) == 0
    assert capsys.readouterr().out.strip() == str(data_dir / CATEGORY)
    _assert_tree(data_dir / CATEGORY)


# --------------------------------------------------------------------------
# extract_matching
# --------------------------------------------------------------------------

SMALL = {"cat/train/good/a.png": b"aaa", "cat/test/good/b.png": b"bbbb"}


def _unpack_all(src: Path, dest: Path) -> None:
    """Every member of ``src`` into ``dest``, the way the downloader does it: via a scratch folder."""
    with scratch_folder(dest.parent, "test") as scratch:
        extract_matching(src, scratch, lambda name: True)
        scratch.rename(dest)


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tar.bz2", "w:bz2")])
def test_extract_matching_reads_every_tar_format_and_hashes_the_whole_file(tmp_path, suffix, mode):
    src = _build_tar(tmp_path / f"a{suffix}", SMALL, mode)
    dest = tmp_path / "out"
    dest.mkdir()
    scan = extract_matching(src, dest, lambda name: name.endswith("a.png"))
    assert scan.sha256 == _sha(src)
    assert set(SMALL) <= set(scan.names)
    assert _files_below(dest / "cat") == {"cat/train/good/a.png": b"aaa"}


def test_extraction_drops_setuid_and_group_write(tmp_path):
    src = tmp_path / "modes.tar"
    with tarfile.open(src, "w") as tar:
        info = tarfile.TarInfo("cat/tool")
        info.size = 2
        info.mode = 0o6777  # setuid, setgid, writable by all
        tar.addfile(info, io.BytesIO(b"#!"))
    _unpack_all(src, tmp_path / "out")
    assert (tmp_path / "out" / "cat" / "tool").stat().st_mode & 0o7777 == 0o755


def test_zip_is_refused_with_one_line_error(server, tmp_path):
    src = tmp_path / "a.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for name, data in SMALL.items():
            zf.writestr(name, data)
    dest = tmp_path / "out"

    with pytest.raises(ArchiveError) as info:
        _unpack_all(src, dest)
    _one_line(str(info.value), str(src), "zip", ".tar.xz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]

    # through a download the same line reaches the user, and the useless archive is deleted
    url = _serve(server, src.read_bytes(), "hazelnut.zip")
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        download_category(CATEGORY, data_dir, url=url, progress=False)
    _one_line(str(info.value), "hazelnut.zip", "zip archive", ".tar.xz", url, *_by_hand_parts(CATEGORY, data_dir))
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
def test_extraction_refuses_malicious_tar(tmp_path, kind):
    outside = Path("/tmp") / f"pixel-evidence-evil-{uuid.uuid4().hex}.txt"
    src = _evil_tar(tmp_path / "evil.tar", kind, outside)
    work = tmp_path / "work"
    dest = work / "dest"
    work.mkdir()

    with pytest.raises(UnsafeArchiveError) as info:
        _unpack_all(tmp_path / "evil.tar", dest)

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


# --------------------------------------------------------------------------
# --archive: a file downloaded by hand
# --------------------------------------------------------------------------


@pytest.mark.parametrize("nesting", NESTINGS)
def test_full_archive_gives_only_the_asked_category_byte_for_byte(nesting, tmp_path, monkeypatch, capsys):
    full = _full_archive(tmp_path / "downloads", nesting)
    before = full.read_bytes()
    monkeypatch.setattr(sources, "FULL_ARCHIVE_SHA256", _sha(full))
    data_dir = tmp_path / "data"

    assert install_category(CATEGORY, data_dir, full, progress=True) == data_dir / CATEGORY

    assert _files_below(data_dir / CATEGORY) == {k: v for k, v in FULL.items() if k.startswith(f"{CATEGORY}/")}
    assert sorted(p.name for p in data_dir.iterdir()) == [CATEGORY]  # no grid, no scratch folder
    assert full.read_bytes() == before  # the user's archive is left alone
    assert sources.FULL_ARCHIVE_NAME in capsys.readouterr().err  # the bar over the read and hash


def test_full_archive_with_wrong_checksum_is_one_line_and_leaves_nothing(tmp_path):
    full = _full_archive(tmp_path / "downloads")  # recognised as the full set: checked against the real digest
    data_dir = tmp_path / "data"

    with pytest.raises(ChecksumError) as info:
        install_category(CATEGORY, data_dir, full, progress=False)

    _one_line(str(info.value), f"checksum mismatch for {full}", f"expected SHA-256 {sources.FULL_ARCHIVE_SHA256}",
              f"found {_sha(full)}", f"download it again from {sources.DOWNLOADS_PAGE}")
    assert list(data_dir.iterdir()) == []


def test_given_sha256_is_checked_instead_of_the_published_one(tmp_path):
    full = _full_archive(tmp_path / "downloads")
    data_dir = tmp_path / "data"
    install_category(CATEGORY, data_dir, full, sha256=_sha(full).upper(), progress=False)
    assert (data_dir / CATEGORY / "train" / "good" / "000.png").read_bytes() == FULL[f"{CATEGORY}/train/good/000.png"]
    with pytest.raises(ChecksumError, match="expected SHA-256 0{64}"):
        install_category("grid", data_dir, full, sha256="0" * 64, progress=False)


def test_category_archive_is_not_held_to_the_full_archive_digest(archive, tmp_path):
    _assert_tree(install_category(CATEGORY, tmp_path / "data", archive, progress=False))


def test_failed_extraction_leaves_nothing_half_written(tmp_path, monkeypatch):
    full = _full_archive(tmp_path / "downloads", "top")
    monkeypatch.setattr(sources, "FULL_ARCHIVE_SHA256", _sha(full))
    cut = tmp_path / "cut" / sources.FULL_ARCHIVE_NAME
    cut.parent.mkdir()
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 3 // 4])  # dies in grid's big file, after hazelnut
    data_dir = tmp_path / "data"
    written: list[str] = []
    real_extract = tarfile.TarFile.extract

    def spy(self, member, *args, **kwargs):
        written.append(member.name)
        return real_extract(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", spy)

    with pytest.raises(DownloadError) as info:
        install_category(CATEGORY, data_dir, cut, progress=False)

    assert f"{CATEGORY}/train/good/000.png" in written  # the category had been written when it failed
    _one_line(str(info.value), str(cut), "damaged", f"download it again from {sources.DOWNLOADS_PAGE}")
    assert list(data_dir.iterdir()) == []


def test_archive_without_the_category_says_which_archive_to_give(tmp_path, monkeypatch):
    full = _full_archive(tmp_path / "downloads")
    monkeypatch.setattr(sources, "FULL_ARCHIVE_SHA256", _sha(full))
    data_dir = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        install_category("pill", data_dir, full, progress=False)
    _one_line(str(info.value), f"{full} has no pill/ folder", "give pill.tar.xz or the full mvtec_anomaly_detection.tar.xz")
    assert list(data_dir.iterdir()) == []


def test_saved_web_page_and_missing_file_are_named(tmp_path):
    page = tmp_path / "hazelnut.tar.xz"
    page.write_text("\n  <!DOCTYPE html><html><title>MVTec</title></html>")
    with pytest.raises(DownloadError) as info:
        install_category(CATEGORY, tmp_path / "data", page, progress=False)
    _one_line(str(info.value), f"{page} is a web page (HTML)", sources.DOWNLOADS_PAGE)

    with pytest.raises(DownloadError) as info:
        install_category(CATEGORY, tmp_path / "data", tmp_path / "nope.tar.xz", progress=False)
    _one_line(str(info.value), f"{tmp_path / 'nope.tar.xz'} is not a file", sources.DOWNLOADS_PAGE)


def test_cli_archive_command(tmp_path, monkeypatch, capsys):
    full = _full_archive(tmp_path / "downloads")
    monkeypatch.setattr(sources, "FULL_ARCHIVE_SHA256", _sha(full))
    data_dir = tmp_path / "data"

    code = cli_main(["data", "download", CATEGORY, "--data-dir", str(data_dir), "--archive", str(full), "--no-progress"])

    assert code == 0
    assert capsys.readouterr().out.strip() == str(data_dir / CATEGORY)
    assert (data_dir / CATEGORY / "test" / "crack" / "000.png").read_bytes() == FULL[f"{CATEGORY}/test/crack/000.png"]


def test_cli_file_system_problem_is_one_line(archive, tmp_path, capsys):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")

    assert run_download(_parse([CATEGORY, "--archive", str(archive), "--data-dir", str(not_a_folder)])) == 2

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and str(not_a_folder) in lines[0]
