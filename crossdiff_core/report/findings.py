"""Plain statements of where CrossDiff wins and where it does not.

The quality goal (issue 7) is: highest HQNR at full resolution and highest Q2n at reduced
resolution on every scene, and clearly better than the random-encoder ablation. These sentences
say, scene by scene, whether that holds, with the numbers, so the report never hides a loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from crossdiff_core.report.ranking import INDEX_LABELS, Metrics, higher_is_better

CROSSDIFF = "crossdiff"
RANDOM_ENCODERS = "crossdiff_random_encoders"
GOAL_INDICES: tuple[str, ...] = ("hqnr", "q2n")
# Two runs of the same settings differ by about 0.001 in HQNR and Q2n (multithreaded reductions
# in training), so a lead over the ablation smaller than this is not called "clearly better".
CLEAR_MARGIN = 0.005


def _value(scores: Mapping[str, float], index: str) -> float | None:
    value = scores.get(index)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _signed(gain: float) -> str:
    return f"{gain:+.4f}"


def _gain(ours: float, theirs: float, index: str) -> float:
    """Improvement of ``ours`` over ``theirs`` in the index's good direction (positive = better)."""
    return ours - theirs if higher_is_better(index) else theirs - ours


def scene_findings(
    scene_id: str,
    by_method: Mapping[str, Mapping[str, float]],
    method: str = CROSSDIFF,
    ablation: str = RANDOM_ENCODERS,
) -> list[str]:
    """Sentences on ``method`` vs the others and vs ``ablation`` on HQNR and Q2n, one scene."""
    if method not in by_method:
        return [f"{scene_id}: {method} was not evaluated on this scene."]
    sentences = []
    for index in GOAL_INDICES:
        label = INDEX_LABELS[index]
        ours = _value(by_method[method], index)
        if ours is None:
            sentences.append(f"{scene_id}: {method} has no {label} value.")
            continue
        rivals = {
            m: v
            for m, s in by_method.items()
            if m != method and (v := _value(s, index)) is not None
        }
        if not rivals:
            sentences.append(f"{scene_id}: {label} {ours:.4f}, no other method to compare with.")
            continue
        pick = max if higher_is_better(index) else min
        best_rival = pick(rivals, key=rivals.__getitem__)
        gain = _gain(ours, rivals[best_rival], index)
        if gain > 0:
            sentences.append(
                f"{scene_id}: {method} is best on {label} ({ours:.4f}; next {best_rival} "
                f"{rivals[best_rival]:.4f}, {_signed(gain)})."
            )
        else:
            sentences.append(
                f"{scene_id}: {method} is NOT best on {label}: {ours:.4f} against {best_rival} "
                f"{rivals[best_rival]:.4f} ({_signed(gain)})."
            )
        if ablation in rivals:
            vs_ablation = _gain(ours, rivals[ablation], index)
            verdict = ablation_verdict(vs_ablation)
            sentences.append(
                f"{scene_id}: {method} is {verdict} the random-encoder ablation on {label} "
                f"({ours:.4f} vs {rivals[ablation]:.4f}, {_signed(vs_ablation)})."
            )
    return sentences


def ablation_verdict(gain: float) -> str:
    """How ``method`` compares with the ablation given its gain (positive = better)."""
    if gain > CLEAR_MARGIN:
        return "clearly better than"
    if gain > 0:
        return f"better, but by less than {CLEAR_MARGIN} (run-to-run noise), than"
    return "NOT better than"


def goal_summary(
    metrics: Metrics, method: str = CROSSDIFF, ablation: str = RANDOM_ENCODERS
) -> list[str]:
    """One line per goal: on how many scenes ``method`` is best / beats the ablation."""
    scenes = [s for s, by_method in metrics.items() if method in by_method]
    if not scenes:
        return [f"{method} was not evaluated on any scene: the quality goal cannot be judged."]
    lines = []
    for index in GOAL_INDICES:
        label = INDEX_LABELS[index]
        best_on, beats_ablation, with_ablation = [], 0, 0
        for scene_id in scenes:
            by_method = metrics[scene_id]
            ours = _value(by_method[method], index)
            if ours is None:
                continue
            rivals = [
                v
                for m, s in by_method.items()
                if m != method and (v := _value(s, index)) is not None
            ]
            if rivals and all(_gain(ours, v, index) > 0 for v in rivals):
                best_on.append(scene_id)
            if ablation in by_method and (a := _value(by_method[ablation], index)) is not None:
                with_ablation += 1
                beats_ablation += _gain(ours, a, index) > CLEAR_MARGIN
        missed = [s for s in scenes if s not in best_on]
        line = f"{label}: {method} is best on {len(best_on)} of {len(scenes)} scene(s)"
        line += f" (not best on: {', '.join(missed)})." if missed else "."
        if with_ablation:
            line += (
                f" It is clearly better (by more than {CLEAR_MARGIN}) than the random-encoder "
                f"ablation on {beats_ablation} of {with_ablation} scene(s)."
            )
        lines.append(line)
    return lines
