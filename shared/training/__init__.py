"""Training: specs, jobs fanned out over the `training` queue, fan-in into the registry."""
