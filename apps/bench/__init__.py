"""`tensorfields bench ...`: one module per benchmark, each with `add_arguments(parser)` and its
entry point (`BENCHMARKS` lists them for the command)."""

from __future__ import annotations

#: benchmark name -> (module under apps.bench, entry point, help)
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "bench_train", "train for a wall-clock budget, tracking held-out PSNR"),
    "march": ("march", "bench_march", "samples/s of marching + compositing, native vs reference (and nerfacc on a GPU)"),
    "mesh": ("mesh", "bench_mesh", "Chamfer / F-score of the marching-cubes mesh of a VM run on the demo scene, export time and memory"),
    "slim": ("slim", "bench_slim", "PSNR and size at each rank of a field trained with and without --slimmable (same budget)"),
    "factors": ("factors", "bench_factors", "VM/CP factor sampling forward + backward, native vs grid_sample"),
    "render": ("render", "bench_render", "seconds to render one viewer frame (orbit camera) of a run, median after a warm-up"),
    "unbounded": ("unbounded", "bench_unbounded", "scene contraction against the bounded box on the demo parts in a textured room: held-out PSNR, mesh F-score"),
    "sfm": ("sfm", "bench_sfm", "structure-from-motion on photos with known poses: seconds per stage, registered images, camera-centre error"),
    "splats": ("splats", "bench_splats", "a gaussians run's .ply drawn by the reference splat rasterizer, its round trip and its slimmed field, on held-out views"),
    "distill": ("distill", "bench_distill", "a VM teacher distilled into each field (and reverse pairs), beside each field trained from scratch for the same time"),
    "hostile": ("hostile", "bench_hostile", "a catalogue of bad inputs, faults and flag values through the CLI, each classified clear / unclear / broken"),
}
