"""One module per `tensorfields` subcommand. Each has `register(commands)`, which adds its parser
with its own flags and `set_defaults(func=...)`; heavy imports happen inside the functions, so
building the parser loads no viewer, mesh or SfM library."""

#: subcommand modules, in the order `tensorfields --help` lists them
COMMANDS = ("demo", "train", "eval", "render", "view", "export_mesh", "export_splats", "import_splats", "distill", "slim", "colmap", "bench")
