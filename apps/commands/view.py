"""`tensorfields view`: the browser viewer of a run (Gradio); `--follow` follows a run that trains."""

from __future__ import annotations

import argparse

from . import types

__all__ = ["DEFAULT_HOST", "register", "add_address_flags", "view_command"]

#: where the viewer listens unless --host says otherwise: this machine only
DEFAULT_HOST = "127.0.0.1"


def register(commands: argparse._SubParsersAction) -> None:
    view = commands.add_parser("view", help="explore a run in the browser (Gradio)", description="Serve an interactive viewer of a run folder.")
    view.add_argument("run", help="run folder")
    add_address_flags(view)
    view.add_argument(
        "--share",
        action="store_true",
        help="also serve through a public gradio.live link, which accepts any Host header (default: off)",
    )
    view.add_argument(
        "--follow",
        action="store_true",
        help="follow a run that is training: show each new checkpoint, the loss and held-out PSNR curves and the "
        "iteration while the page is open (waits for the first checkpoint)",
    )
    view.add_argument("--device", type=types.device, default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    view.set_defaults(func=view_command)


def add_address_flags(parser: argparse.ArgumentParser, default_host: str | None = DEFAULT_HOST) -> None:
    """The viewer's --host and --port (`default_host` None: --host is None unless given, for
    commands that check whether it was)."""
    parser.add_argument("--host", default=default_host, help=f"address the viewer listens on (default: {DEFAULT_HOST}, this machine only)")
    parser.add_argument("--port", type=types.port, default=None, help="the viewer's port, 1 to 65535 (default: Gradio's, 7860 or the next free one)")


def view_command(args: argparse.Namespace) -> None:
    """Build the viewer and serve it until Ctrl-C (`viewer.app.launch_viewer`: only this
    machine's Host names, no uploads); with --follow, once the run holds a checkpoint."""
    from ..viewer.app import build_viewer, check_address, launch_viewer
    from ..viewer.follow import wait_for_checkpoint

    check_address(args.host, args.port)  # before the run is loaded
    if args.follow:
        wait_for_checkpoint(args.run)
    launch_viewer(build_viewer(args.run, args.device, follow=args.follow), host=args.host, port=args.port, share=args.share)
