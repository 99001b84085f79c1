"""Diffusion maths (schedules, noising, loss, samplers); knows no network."""

from crossdiff_core.diffusion.gaussian import GaussianDiffusion
from crossdiff_core.diffusion.schedules import SCHEDULES, make_schedule

__all__ = ["SCHEDULES", "GaussianDiffusion", "make_schedule"]
