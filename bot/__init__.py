"""Front ends: they translate input into requests and render progress, nothing else."""
