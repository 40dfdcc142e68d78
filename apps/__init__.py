"""What users run: the CLI, training, evaluation, rendering and benchmarks."""
