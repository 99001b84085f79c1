"""Tiny pretraining settings shared by the pretraining tests (a run of a few steps in seconds)."""

TINY = {
    "pan_patch": 16,
    "batch_size": 4,
    "channels": [8, 16],
    "timesteps": 100,
    "sample_steps": 3,
    "progress": False,
}
