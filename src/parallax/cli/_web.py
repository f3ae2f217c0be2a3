"""`parallax launch --web ADDRESS`: the live view in the browser, for the length of a run.

The argument is checked while the command line is parsed (`web_address`: a malformed
address is a usage error naming `--web`, exit status 2, before anything is built); the
server starts before the pipeline plays and is closed with the run (`serve_web`). What the
page shows is `parallax.pipeline.WebServer`'s business (docs/cli.md, "Live view in the
browser").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from parallax import ParseError
from parallax._errors import ParallaxError
from parallax.pipeline import Pipeline, WebServer


def web_address(text: str) -> str:
    """argparse `type=` for `--web`: the address itself, once it parses.

    Raises:
        argparse.ArgumentTypeError: malformed; argparse prints it after "argument --web:".
    """
    try:
        WebServer.parse_address(text, what="")
    except ParseError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def serve_web(
    pipeline: Pipeline, address: str | None, say: Callable[[str], None]
) -> WebServer | None:
    """Start the live view on `address` (None: no `--web`, nothing to start) and say where.

    The caller owns the server and closes it when the run ends.

    Raises:
        ParallaxError: the address cannot be bound (in use, not this machine's); the
            message names `--web` and the address, and the CLI exits 1.
    """
    if address is None:
        return None
    try:
        web = WebServer(pipeline, address, what="--web")
    except OSError as e:
        raise ParallaxError(e.strerror or str(e)) from e  # strerror: without "[Errno 98]"
    note = (
        "" if web.local_only else " (not loopback: anyone who can reach this machine can read it)"
    )
    say(f"Serving the live view on {web.url}{note}")
    return web
