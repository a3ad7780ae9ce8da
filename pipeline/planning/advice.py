"""Shared prefixes too short to cache, and whether padding them with stable text would pay.

A prefix shorter than the model's minimum (1,024 tokens; gpt-5.5: its 2,048-token grid
point) is never cached, however many requests share it. Padding it with stable material
(a longer style guide, examples) up to the minimum makes it cacheable, and pays when, by the
provider's break-even (API-NOTES §1.5), ``L > M * (r + (w - r) / N)``: ``L`` the shared
tokens, ``M`` the minimum, ``r`` and ``w`` the read and write multipliers (``w = 1`` where
writes are free) and ``N`` the requests that share it. This is advice only: nothing is padded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.money import PromptCachePolicy, base_model_name
from pipeline.planning.tree import build_tree
from pipeline.prompts import RenderedRequest


@dataclass(frozen=True)
class PrefixAdvice:
    """One shared prefix under the minimum: who shares it, what it lacks, whether to pad."""

    model: str
    label: str
    requests: int
    shared_tokens: int
    minimum: int
    padding_pays: bool

    @property
    def lacks(self) -> int:
        """Tokens missing to reach the minimum."""
        return self.minimum - self.shared_tokens

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "model": self.model,
            "group": self.label,
            "requests": self.requests,
            "shared_tokens": self.shared_tokens,
            "minimum": self.minimum,
            "lacks": self.lacks,
            "padding_pays": self.padding_pays,
        }

    def line(self) -> str:
        """One readable line."""
        verdict = (
            "padding it with stable text would pay"
            if self.padding_pays
            else "padding it would not pay"
        )
        return (
            f"{self.label} on {self.model}: {self.requests} requests share a "
            f"{self.shared_tokens:,}-token prefix, {self.lacks:,} short of the "
            f"{self.minimum:,}-token minimum: {verdict}"
        )


def prefix_advice(
    requests: Sequence[RenderedRequest], policies: Mapping[str, PromptCachePolicy]
) -> list[PrefixAdvice]:
    """The deepest shared prefixes of ``requests`` that fall under their model's minimum.

    A prefix is reported when at least two requests share it, it is where their sharing stops
    (no single continuation carries all of them) and nothing deeper under it is both shared and
    long enough to cache. Models without a policy are skipped.
    """
    eligible = [r for r in requests if r.previous_response_id is None]
    tree = build_tree(eligible)
    children: dict[int, list[int]] = {}
    for node, up in enumerate(tree.parent):
        if up >= 0:
            children.setdefault(up, []).append(node)
    sample: dict[int, tuple[RenderedRequest, int]] = {}
    for index, path in enumerate(tree.paths):
        for at, node in enumerate(path):
            sample.setdefault(node, (eligible[index], at))

    def policy_of(request: RenderedRequest) -> PromptCachePolicy | None:
        return policies.get(request.model) or policies.get(base_model_name(request.model))

    def shared_and_cacheable(node: int, minimum: int) -> bool:
        stack = list(children.get(node, ()))
        while stack:
            child = stack.pop()
            if tree.count[child] >= 2:
                if tree.depth[child] >= minimum:
                    return True
                stack.extend(children.get(child, ()))
        return False

    found: list[PrefixAdvice] = []
    for node, count in enumerate(tree.count):
        if count < 2 or tree.depth[node] == 0:
            continue
        request, at = sample[node]
        policy = policy_of(request)
        if policy is None or tree.depth[node] >= policy.threshold:
            continue
        if any(tree.count[c] == count for c in children.get(node, ())):
            continue
        if shared_and_cacheable(node, policy.threshold):
            continue
        has_format = request.segments[0].kind == "format"
        kinds = [s.kind for s in request.segments[: at + 1 if has_format else at]]
        parts = [k for k in kinds if k != "format"]
        label = f"{request.task} ({' + '.join(parts) or 'format'})"
        found.append(
            PrefixAdvice(
                model=request.model,
                label=label,
                requests=count,
                shared_tokens=tree.depth[node],
                minimum=policy.threshold,
                padding_pays=policy.padding_pays(tree.depth[node], count),
            )
        )
    return sorted(found, key=lambda a: (-a.requests, a.label))
