"""The live view: addresses, the JSON endpoint, the page's routes, and a real browser."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import parallax
from parallax._errors import ParseError
from parallax.pipeline import Message, MessageType, Pipeline, WebServer
from parallax.pipeline._httpd import parse_address
from parallax.pipeline._view import LiveView, layout

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "web-view.png"
UPDATE_SCREENSHOT = "PARALLAX_UPDATE_SCREENSHOT"
"""Set to 1 to have the browser test write docs/img/web-view.png (docs/cli.md shows it);
otherwise it checks a screenshot in a temporary folder, so a test run leaves the checkout
as it found it."""

# A pipeline that keeps running: identity sleeps 2 ms a buffer, about 500 buffers/s.
RUNNING = "fakesrc name=src sizetype=fixed sizemax=1000 ! identity name=i sleep-time=2000 ! queue name=q ! fakesink name=s"

TEE3 = (
    "fakesrc name=src ! tee name=t ! queue name=q0 ! fakesink name=s0 "
    "t. ! queue name=q1 ! identity name=i1 ! fakesink name=s1 "
    "t. ! queue name=q2 ! fakesink name=s2"
)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read()


def _api(web: WebServer) -> dict[str, Any]:
    status, headers, body = _get(web.url + "api/pipeline")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data: dict[str, Any] = json.loads(body)
    return data


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in data["elements"]}


def _until(
    web: WebServer, ready: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> dict[str, Any]:
    """The first snapshot that is `ready` (a busy machine may take a while to start)."""
    deadline = time.monotonic() + timeout
    while not ready(data := _api(web)):
        assert time.monotonic() < deadline, f"not ready within {timeout} s: {data}"
        time.sleep(0.05)
    return data


@pytest.fixture
def running() -> Iterator[Pipeline]:
    with parallax.parse_launch(RUNNING) as p:
        p.play()
        yield p


# -- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (":0", ("127.0.0.1", 0)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:9000", ("0.0.0.0", 9000)),
        ("my-host.example:1", ("my-host.example", 1)),
    ],
)
def test_addresses_that_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "says", "column"),
    [
        ("", "empty address", 1),
        ("localhost", "'localhost' has no port", 10),
        ("127.0.0.1:", "no port after ':'", 11),
        ("127.0.0.1:http", "port 'http' is not a number", 11),
        ("127.0.0.1:-1", "port '-1' is not a number", 11),
        ("127.0.0.1:65536", "port 65536 is out of range 0-65535", 11),
        ("127.0.0.1:٣", "port '٣' is not a number", 11),  # a digit, but not an ASCII one
        ("::1:80", "an IPv6 host needs brackets, as in [::1]:80", 1),
        ("[::1]80", "expected ':PORT' after ']'", 6),
        ("[::1:80", "'[' without its ']'", 1),
        ("[localhost]:80", "'localhost' is not an IPv6 address", 2),
        ("bad_host!:80", "'bad_host!' is not an IP address or host name", 1),
        (" 127.0.0.1:80", "' 127.0.0.1' is not an IP address or host name", 1),
    ],
)
def test_malformed_addresses_say_what_and_where(text: str, says: str, column: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_address(text, what="--web")
    assert str(info.value).startswith(f"--web: {says}")
    assert info.value.column == column


def test_serve_web_names_the_argument_in_its_error() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    with pytest.raises(ParseError, match=r"^web address: port 'x' is not a number"):
        p.serve_web("127.0.0.1:x")
    with pytest.raises(ParseError, match=r"^--web: port 70000 is out of range"):
        WebServer(p, "70000", what="--web")


def test_an_address_in_use_is_an_oserror_naming_it() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"web address 127\.0\.0\.1:{port}: cannot listen"):
            p.serve_web(f"127.0.0.1:{port}")


def test_no_host_binds_loopback() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    with p.serve_web("0") as web:
        assert web.host == "127.0.0.1" and web.local_only
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", web.url) and web.port > 0


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_address_in_brackets() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink name=s")
    with p.serve_web("[::1]:0") as web:
        assert web.url == f"http://[::1]:{web.port}/" and web.local_only
        assert _by_name(_api(web))["s"]["factory"] == "fakesink"


# -- the JSON endpoint -----------------------------------------------------------------


def test_api_shows_the_graph_and_counters_that_grow(running: Pipeline) -> None:
    with running.serve_web() as web:
        first = _until(web, lambda d: _by_name(d)["s"]["metrics"]["buffers_in"] > 0)
        time.sleep(0.3)
        second = _api(web)
    assert first["name"] == "pipeline0" and first["state"] == "PLAYING" and not first["eos"]
    elements = _by_name(second)
    assert [e["name"] for e in second["elements"]] == ["src", "i", "q", "s"]
    assert [elements[n]["column"] for n in ("src", "i", "q", "s")] == [0, 1, 2, 3]
    assert elements["q"]["factory"] == "queue"
    assert {(x["src"], x["sink"]) for x in second["links"]} == {
        ("src", "i"),
        ("i", "q"),
        ("q", "s"),
    }
    assert all(link["caps"] == "bytes" for link in second["links"])  # negotiated caps
    pads = {pad["name"]: pad for pad in elements["q"]["pads"]}
    assert pads["src"]["caps"] == "bytes" and pads["src"]["peer"] == "s:sink"
    before = _by_name(first)["s"]["metrics"]["buffers_in"]
    after = elements["s"]["metrics"]["buffers_in"]
    assert after > before > 0
    assert elements["s"]["metrics"]["bytes_in"] == 1000 * after
    assert elements["q"]["fill"] is not None and 0.0 <= elements["q"]["fill"] <= 1.0
    assert elements["s"]["fill"] is None  # a sink holds no buffers
    assert elements["s"]["process"] == {
        "id": "main",
        "label": "this process",
        "where": f"pid {os.getpid()}",
    }
    assert second["messages"] == [] and elements["s"]["errors"] == 0


def test_rates_and_their_history() -> None:
    with parallax.parse_launch(RUNNING) as p, LiveView(p, interval=0.1) as view:
        p.play()
        for _ in range(4):  # the server ticks between requests; here the test does
            time.sleep(0.12)
            view.tick()
        data = view.snapshot()
    sink = _by_name(data)["s"]
    # About 500 buffers/s at most (2 ms a buffer); well above zero on a busy machine too.
    assert 20 < sink["rates"]["buffers_per_s"] < 600
    assert sink["rates"]["bytes_per_s"] == pytest.approx(1000 * sink["rates"]["buffers_per_s"])
    history = sink["history"]
    assert 2 <= len(history["time"]) == len(history["buffers_per_s"]) == len(history["bytes_per_s"])
    assert history["time"] == sorted(history["time"])


def test_a_view_refuses_a_nonpositive_interval() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    with pytest.raises(ValueError, match=r"interval must be > 0 seconds, not 0"):
        LiveView(p, interval=0)
    assert p.bus._listeners == ()  # nothing was left listening


def test_placement_of_a_procqueue_stage() -> None:
    p = parallax.parse_launch(
        "fakesrc ! identity sleep-time=2000 ! procqueue name=pq ! identity name=far ! fakesink name=farsink"
    )
    with p, p.serve_web() as web:
        p.play()
        data = _until(web, lambda d: _by_name(d)["farsink"]["metrics"]["buffers_in"] > 0)
        elements = _by_name(data)
        pid = p["pq"].pid  # type: ignore[attr-defined]
    child = {"id": "pq", "label": "child process", "where": f"pid {pid}"}
    assert elements["far"]["process"] == child and elements["farsink"]["process"] == child
    assert elements["pq"]["process"]["id"] == "main"  # the boundary itself runs here
    assert pid != os.getpid()


def test_errors_and_warnings_are_observed_not_consumed() -> None:
    p = parallax.parse_launch("fakesrc ! identity name=bad error-after=3 ! fakesink")
    with p, p.serve_web() as web:
        p.post(Message(MessageType.WARNING, "bad", {"text": "running hot"}))
        p.play()
        message = p.wait(10)  # the ERROR is still there for the code that waits for it
        assert message is not None and message.type is MessageType.ERROR
        data = _api(web)
    bad = _by_name(data)["bad"]
    assert bad["errors"] == 1 and bad["warnings"] == 1
    kinds = [(m["type"], m["source"]) for m in data["messages"]]
    assert kinds == [("WARNING", "bad"), ("ERROR", "bad")]
    assert data["messages"][0]["text"] == "running hot"
    assert "bad" in data["messages"][1]["text"]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_error_that_cannot_be_printed_does_not_fail_its_poster() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink name=s")
    with LiveView(p) as view:
        p.post(Message(MessageType.ERROR, "s", {"error": _Unprintable()}))
        (entry,) = view.snapshot()["messages"]
    assert entry["source"] == "s" and "_Unprintable whose text cannot be read" in entry["text"]
    assert p.bus.poll(MessageType.ERROR, 0) is not None  # still there for wait()


def test_eos_and_final_counters_after_the_run() -> None:
    p = parallax.parse_launch("fakesrc num-buffers=25 ! fakesink name=s")
    with p.serve_web() as web:
        p.run(timeout=10)  # run() still gets its EOS: the view only listens
        data = _api(web)
    assert data["eos"] and data["state"] == "NULL"
    assert _by_name(data)["s"]["metrics"]["buffers_in"] == 25


# -- layout ----------------------------------------------------------------------------


def test_layout_of_a_tee_with_three_branches() -> None:
    p = parallax.parse_launch(TEE3)
    places = layout(p)
    column = {n: c for n, (c, _) in places.items()}
    row = {n: r for n, (_, r) in places.items()}
    for src, sink in p.links():  # every link points right
        assert column[sink.element.name] > column[src.element.name]
    assert column["q0"] == column["q1"] == column["q2"] == 2
    assert row["q0"] < row["q1"] < row["q2"]  # branches in pad order: no crossing
    assert row["s0"] == row["q0"] and row["i1"] == row["q1"] and row["s2"] == row["q2"]
    assert row["s1"] == row["i1"]  # a chain stays in its lane, however long
    assert row["t"] == row["q1"] == row["src"]  # the tee sits in the middle of its branches
    cells = list(places.values())
    assert len(set(cells)) == len(cells)  # no two elements in one place


def test_layout_of_nested_branches_and_separate_chains() -> None:
    p = parallax.parse_launch(
        "fakesrc ! tee name=t ! queue ! tee name=u ! fakesink name=a u. ! fakesink name=b "
        "t. ! procqueue name=pq ! fakesink name=c  fakesrc name=other ! fakesink name=d"
    )
    places = layout(p)
    cells = list(places.values())
    assert len(set(cells)) == len(cells)
    assert places["a"][1] < places["b"][1] < places["c"][1] < places["d"][1]
    assert places["u"][1] == (places["a"][1] + places["b"][1]) / 2
    assert places["other"][0] == 0


# -- the page's routes -----------------------------------------------------------------


def test_page_routes_and_headers() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink name=s")
    with p.serve_web() as web:
        status, headers, page = _get(web.url)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b'<script src="/app.js"' in page and b"https://" not in page
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        status, headers, script = _get(web.url + "app.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert b"/api/pipeline" in script
        status, headers, _ = _get(web.url + "style.css")
        assert status == 200 and headers["Content-Type"].startswith("text/css")
        status, _, body = _get(web.url + "index.html?x=1")
        assert status == 200 and body == page
        status, _, body = _get(web.url + "nothing-here")
        assert status == 404 and b"no such page: /nothing-here" in body
        request = urllib.request.Request(web.url + "api/pipeline", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        with info.value as e:
            assert e.code == 405 and e.headers["Allow"] == "GET"


def test_page_needs_nothing_from_outside() -> None:
    folder = ROOT / "src" / "parallax" / "pipeline" / "web"
    for path in folder.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path  # no CDN
        assert 'fetch("http' not in text and "import " not in text, path


def test_a_foreign_host_header_is_refused_on_loopback() -> None:
    # DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1.
    p = parallax.parse_launch("fakesrc ! fakesink")
    with p.serve_web() as web:
        status, _, body = _get(web.url + "api/pipeline", {"Host": f"evil.example:{web.port}"})
        assert status == 403 and b"loopback names only" in body
        assert _get(web.url, {"Host": f"localhost:{web.port}"})[0] == 200


def test_close_releases_the_port_and_the_thread() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    web = p.serve_web()
    port = web.port
    assert _get(web.url)[0] == 200
    web.close()
    web.close()  # idempotent
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with contextlib.closing(conn), pytest.raises(ConnectionRefusedError):
        conn.request("GET", "/")
    assert p.bus._listeners == ()


# -- a real browser --------------------------------------------------------------------


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    return path


def _browse(chromium: str, url: str, profile: Path, *extra: str) -> str:
    """Load `url` headless, run its script for 4 s of page time, return the DOM."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1500,1000",
            "--virtual-time-budget=4000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _node_buffers(dom: str) -> dict[str, int]:
    return {
        name: int(n) for name, n in re.findall(r'data-element="([^"]+)" data-buffers="(\d+)"', dom)
    }


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_in_a_headless_browser(tmp_path: Path) -> None:
    chromium = _chromium()
    p = parallax.parse_launch(
        "fakesrc name=camera sizetype=fixed sizemax=65536 ! identity name=pace sleep-time=4000 "
        "! tee name=split ! queue name=fast ! fakesink name=archive "
        "split. ! queue name=slow max-size-buffers=8 ! identity name=encode sleep-time=9000 "
        "! fakesink name=encoded "
        "split. ! procqueue name=worker ! identity name=analyse ! fakesink name=results"
    )
    with p, p.serve_web() as web:
        p.play()
        first = _browse(chromium, web.url, tmp_path / "profile", "--dump-dom")
        time.sleep(1.5)
        second = _browse(chromium, web.url, tmp_path / "profile", "--dump-dom")
        shot = SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) == "1" else tmp_path / "shot.png"
        _browse(chromium, web.url, tmp_path / "profile", f"--screenshot={shot}")
    names = ["camera", "pace", "split", "fast", "archive", "slow", "encode", "encoded"]
    names += ["worker", "analyse", "results"]
    for dom in (first, second):
        assert re.search(r'data-updates="[1-9]\d*"', dom), "the page never drew"
        assert set(_node_buffers(dom)) == set(names)
        assert 'data-state="PLAYING"' in dom
    a, b = _node_buffers(first), _node_buffers(second)
    assert b["archive"] > a["archive"] > 0, "counters did not change between two loads"
    assert b["results"] > 0, "the child process's counters did not reach the page"
    assert "child process pid" in second and 'data-process="worker"' in second
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
