"""``CompareConfig``: what ``compare_run`` and ``sweep_run`` run and how they time it."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field

from ofb_deploy.choices import Method
from ofb_deploy.timing.config import TimingConfig
from ofb_deploy.utils.config import NonNegativeInt, split_list


def _distinct(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    return seeds


def _with_ofb(methods: tuple[str, ...]) -> tuple[str, ...]:
    return methods if "ofb" in methods else ("ofb", *methods)  # the others are held at OFB's MACs


Seeds = Annotated[
    tuple[NonNegativeInt, ...], BeforeValidator(split_list), Field(min_length=1), AfterValidator(_distinct)
]
Methods = Annotated[tuple[Method, ...], BeforeValidator(split_list), Field(min_length=1), AfterValidator(_with_ofb)]


class CompareConfig(TimingConfig):
    """What ``compare_run`` does: how it times (every ``TimingConfig`` field), and

    Args:
        seeds: seeds of every method (OFB re-searches at seeds other than the run's).
        methods: methods to run (``ofb`` is always included: the others are held at its MACs).
    """

    SECTION: ClassVar[str] = "compare"

    seeds: Seeds = (0,)
    methods: Methods = Method.values()[:5]  # torch-pruning-taylor and ofb-latency run on request
