"""`tensorfields view`: the browser viewer of a run (Gradio)."""

from __future__ import annotations

import argparse

from . import types

__all__ = ["register", "view_command"]


def register(commands: argparse._SubParsersAction) -> None:
    view = commands.add_parser("view", help="explore a run in the browser (Gradio)", description="Serve an interactive viewer of a run folder.")
    view.add_argument("run", help="run folder")
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    view.add_argument("--port", type=types.port, default=None, help="port, 1 to 65535 (default: Gradio's, 7860 or the next free one)")
    view.add_argument(
        "--share",
        action="store_true",
        help="also serve through a public gradio.live link, which accepts any Host header (default: off)",
    )
    view.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    view.set_defaults(func=view_command)


def view_command(args: argparse.Namespace) -> None:
    """Build the viewer and serve it until Ctrl-C (`viewer.app.launch_viewer`: only this
    machine's Host names, no uploads)."""
    from ..viewer.app import build_viewer, check_address, launch_viewer

    check_address(args.host, args.port)  # before the run is loaded
    launch_viewer(build_viewer(args.run, args.device), host=args.host, port=args.port, share=args.share)
