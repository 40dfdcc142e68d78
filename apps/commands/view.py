"""`tensorfields view`: the browser viewer of a run (Gradio)."""

from __future__ import annotations

import argparse

__all__ = ["register", "view_command"]


def register(commands: argparse._SubParsersAction) -> None:
    view = commands.add_parser("view", help="explore a run in the browser (Gradio)", description="Serve an interactive viewer of a run folder.")
    view.add_argument("run", help="run folder")
    view.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    view.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    view.add_argument("--share", action="store_true", help="also serve through a public gradio.live link (default: off)")
    view.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    view.set_defaults(func=view_command)


def view_command(args: argparse.Namespace) -> None:
    """Build the viewer and serve it until Ctrl-C."""
    from ..viewer.app import build_viewer

    demo = build_viewer(args.run, args.device)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
