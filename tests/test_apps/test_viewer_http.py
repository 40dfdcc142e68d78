"""The viewer's server answers only to this machine's names and takes no uploads (`ViewerGuard`):
HTTP requests to a viewer launched on a free port, and the guard's decisions on their own."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import small_config

from apps.cli import main
from apps.training import train_run
from apps.viewer.app import ViewerGuard, allowed_hosts, build_viewer, launch_viewer

BOUNDARY = "tensorfields-test"
UPLOAD = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.txt\"\r\n"
          f"Content-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--\r\n").encode()  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def run(sphere_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run folder."""
    run = tmp_path_factory.mktemp("viewer-http") / "run"
    train_run(small_config(sphere_scene, run, iters=10), final_eval_views=1)
    return run


@pytest.fixture(scope="module")
def port(run: Path) -> Iterator[int]:
    """A viewer of a tiny run, served on a free port of 127.0.0.1."""
    demo = build_viewer(run, "cpu")
    port = _free_port()
    launch_viewer(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield port
    finally:
        demo.close()


def request(
    port: int, method: str, path: str, host: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """(status, body) of one request with the Host header `host` (default: 127.0.0.1:port)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("host", ["127.0.0.1:PORT", "localhost:PORT", "LOCALHOST", "[::1]:PORT"])
def test_local_names_are_served(port: int, host: str) -> None:
    status, body = request(port, "GET", "/", host.replace("PORT", str(port)))
    assert status == 200 and b"<html" in body.lower()


@pytest.mark.parametrize("path", ["/", "/config", "/gradio_api/info"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:PORT", "127.0.0.1.evil.example:PORT", ""])
def test_a_foreign_host_is_refused(port: int, path: str, host: str) -> None:
    status, body = request(port, "GET", path, host.replace("PORT", str(port)))
    assert status == 400 and b"Host" in body


@pytest.mark.parametrize("path", ["/gradio_api/upload", "/gradio_api/upload?upload_id=abc", "/upload"])
def test_uploads_are_refused(port: int, path: str) -> None:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    status, body = request(port, "POST", path, body=UPLOAD, headers=headers)
    assert status == 403 and b"upload" in body


def test_upload_progress_is_refused(port: int) -> None:
    assert request(port, "GET", "/gradio_api/upload_progress?upload_id=abc")[0] == 403


def _scope(path: str, host: str | None) -> dict[str, Any]:
    headers = [] if host is None else [(b"host", host.encode())]
    return {"type": "http", "path": path, "headers": headers}


def test_guard_decisions() -> None:
    local = ViewerGuard(None, allowed_hosts("127.0.0.1"))
    assert local.refusal(_scope("/", "127.0.0.1:7860")) is None
    assert local.refusal(_scope("/", "192.168.1.5:7860"))[0] == 400  # an address of another interface: not listening there
    assert local.refusal(_scope("/", None))[0] == 400
    everywhere = ViewerGuard(None, allowed_hosts("0.0.0.0"), any_address=True)
    assert everywhere.refusal(_scope("/", "192.168.1.5:7860")) is None and everywhere.refusal(_scope("/", "[fe80::1]")) is None
    assert everywhere.refusal(_scope("/", f"{socket.gethostname()}:7860")) is None
    assert everywhere.refusal(_scope("/", "evil.example"))[0] == 400
    shared = ViewerGuard(None, None)  # --share: the gradio.live name reaches it
    assert shared.refusal(_scope("/", "abc.gradio.live")) is None
    assert shared.refusal(_scope("/gradio_api/upload", "abc.gradio.live"))[0] == 403
    named = ViewerGuard(None, allowed_hosts("MyBox.lan"))
    assert named.refusal(_scope("/", "mybox.lan:7860")) is None


def test_a_port_in_use_names_the_flag(run: Path, port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(run), "--port", str(port)]) == 2  # the viewer above listens there
    assert capsys.readouterr().err == f"tensorfields view: error: --port {port}: in use by another program; choose another, or leave --port out\n"


@pytest.mark.parametrize("host, words", [("999.999.0.1", "not a host name or address"), ("192.0.2.1", "not an address of this machine")])
def test_a_host_that_is_not_this_machine_names_the_flag(host: str, words: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(run), "--host", host, "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tensorfields view: error: --host {host}: {words}") and err.count("\n") == 1, err
