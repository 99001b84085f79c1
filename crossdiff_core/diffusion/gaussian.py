"""Gaussian diffusion maths: forward noising, the epsilon-prediction loss, DDPM and DDIM sampling.

Not an ``nn.Module``: it holds float64 schedule arrays and takes the network as an argument. A
network is any callable
``model(x_t (N, C, H, W), t (N,) long, condition (N, C_cond, H, W)) -> eps (N, C, H, W)``.
The dropped condition of classifier-free guidance is an all-zero condition image, both in training
and in the unconditional pass of guided sampling.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

Denoiser = Callable[[Tensor, Tensor, Tensor], Tensor]


class GaussianDiffusion:
    """Diffusion process defined by betas (T,) float64 (see ``make_schedule``)."""

    def __init__(self, schedule: np.ndarray) -> None:
        betas = np.asarray(schedule, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 2:
            raise ValueError(f"schedule must be a 1-D array of betas, got shape {betas.shape}")
        if not (np.all(betas > 0) and np.all(betas < 1)):
            raise ValueError("schedule betas must lie in (0, 1)")
        self.betas = betas
        self.num_timesteps = int(betas.size)
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        # q(x_{t-1} | x_t, x_0): mean = coef_x0 * x_0 + coef_xt * x_t, variance = beta tilde.
        self.posterior_variance = (
            betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef_x0 = (
            betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef_xt = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        )

    def _at(self, values: np.ndarray, t: Tensor, like: Tensor) -> Tensor:
        """values[t] as a (N, 1, 1, 1) tensor of like's dtype and device (gathered in float64)."""
        picked = torch.from_numpy(values)[t.detach().cpu().long()]
        return picked.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    def _check_t(self, t: Tensor, batch: int) -> None:
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            raise ValueError(f"t must lie in [0, {self.num_timesteps - 1}]")

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Noised x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; x0, noise (N, C, H, W), t (N,)."""
        self._check_t(t, x0.shape[0])
        return self._at(self.sqrt_alphas_cumprod, t, x0) * x0 + self._at(
            self.sqrt_one_minus_alphas_cumprod, t, x0
        ) * noise

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x0 implied by x_t and predicted noise eps (all (N, C, H, W))."""
        return (
            x_t - self._at(self.sqrt_one_minus_alphas_cumprod, t, x_t) * eps
        ) / self._at(self.sqrt_alphas_cumprod, t, x_t)

    def draw_training_inputs(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator,
        cond_drop_prob: float = 0.0,
        t_max: int | None = None,
    ) -> tuple[Tensor, Tensor, bool]:
        """Timesteps (N,) long, noise ``shape`` float32 and whether this batch drops its condition.

        Timesteps are uniform on [0, ``t_max``) (default: every timestep); a small ``t_max``
        concentrates training where the frozen encoders read their features. Drawn on the CPU
        from ``generator`` so the values do not depend on the device; the order of draws is fixed
        (drop decision, timesteps, noise) so a resumed run repeats them exactly.
        """
        t_max = self.num_timesteps if t_max is None else int(t_max)
        if not 1 <= t_max <= self.num_timesteps:
            raise ValueError(f"t_max must lie in [1, {self.num_timesteps}], got {t_max}")
        drop_condition = bool(torch.rand((), generator=generator) < cond_drop_prob)
        t = torch.randint(0, t_max, (shape[0],), generator=generator)
        noise = torch.randn(shape, generator=generator)
        return t, noise, drop_condition

    def training_loss(
        self,
        model: Denoiser,
        x0: Tensor,
        condition: Tensor,
        t: Tensor,
        noise: Tensor,
        drop_condition: bool = False,
    ) -> Tensor:
        """Mean squared error between ``noise`` and the model's prediction from x_t (scalar).

        x0 (N, C, H, W), condition (N, C_cond, H, W), t (N,), noise like x0. ``drop_condition``
        replaces the condition with zeros (classifier-free guidance training).
        """
        x_t = self.q_sample(x0, t, noise.to(device=x0.device, dtype=x0.dtype))
        if drop_condition:
            condition = torch.zeros_like(condition)
        eps = model(x_t, t.to(x0.device), condition)
        return F.mse_loss(eps.float(), noise.to(device=x0.device, dtype=torch.float32))

    def guided_eps(
        self, model: Denoiser, x_t: Tensor, t: Tensor, condition: Tensor, guidance_scale: float
    ) -> Tensor:
        """(1 + w) eps(x_t | c) - w eps(x_t | 0); w = 0 is the plain conditional prediction."""
        eps = model(x_t, t, condition)
        if guidance_scale:
            unconditional = model(x_t, t, torch.zeros_like(condition))
            eps = (1.0 + guidance_scale) * eps - guidance_scale * unconditional
        return eps

    @torch.no_grad()
    def ddpm_sample(
        self,
        model: Denoiser,
        condition: Tensor,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        guidance_scale: float = 0.0,
    ) -> Tensor:
        """Ancestral sampling over all T steps; returns x0 of ``shape`` (N, C, H, W) in [-1, 1].

        Noise is drawn on the CPU from ``generator`` (same samples on any device).
        """
        device, dtype = condition.device, condition.dtype
        x = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
        for step in range(self.num_timesteps - 1, -1, -1):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            eps = self.guided_eps(model, x, t, condition, guidance_scale)
            x0 = self.predict_x0(x, t, eps).clamp(-1.0, 1.0)
            mean = self._at(self.posterior_mean_coef_x0, t, x) * x0 + self._at(
                self.posterior_mean_coef_xt, t, x
            ) * x
            if step > 0:
                noise = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
                x = mean + self._at(np.sqrt(self.posterior_variance), t, x) * noise
            else:
                x = mean
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        """Evenly spaced timesteps, descending, from T - 1 to 0 (``steps`` of them)."""
        if not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"DDIM steps must lie in [1, {self.num_timesteps}], got {steps}")
        return sorted(
            {int(round(v)) for v in np.linspace(0, self.num_timesteps - 1, steps)}, reverse=True
        )

    @torch.no_grad()
    def ddim_sample(
        self,
        model: Denoiser,
        condition: Tensor,
        shape: tuple[int, ...],
        steps: int = 50,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        guidance_scale: float = 0.0,
    ) -> Tensor:
        """DDIM sampling on ``steps`` timesteps; eta = 0 is deterministic given the start noise.

        Returns x0 of ``shape`` (N, C, H, W) in [-1, 1].
        """
        device, dtype = condition.device, condition.dtype
        x = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
        timesteps = self.ddim_timesteps(steps)
        for index, step in enumerate(timesteps):
            t = torch.full((shape[0],), step, dtype=torch.long, device=device)
            eps = self.guided_eps(model, x, t, condition, guidance_scale)
            x0 = self.predict_x0(x, t, eps).clamp(-1.0, 1.0)
            # Re-derive eps from the clamped x0 so the update stays consistent with it.
            eps = (x - self._at(self.sqrt_alphas_cumprod, t, x) * x0) / self._at(
                self.sqrt_one_minus_alphas_cumprod, t, x
            )
            abar = float(self.alphas_cumprod[step])
            abar_prev = float(self.alphas_cumprod[timesteps[index + 1]]) if index + 1 < len(
                timesteps
            ) else 1.0
            sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
            x = np.sqrt(abar_prev) * x0 + np.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                noise = torch.randn(shape, generator=generator)
                x = x + sigma * noise.to(device=device, dtype=dtype)
        return x
