"""Builder flags per TensorRT generation (pure decisions; the real builders are exercised in tests/integration)."""

from __future__ import annotations

import pytest

from sorter.detect.trt_compat import build_plan
from sorter.errors import SorterError


@pytest.mark.parametrize(
    ("version", "precision", "network", "builder"),
    [
        ("8.5.2.2", "fp32", ("EXPLICIT_BATCH",), ()),
        ("8.6.2.3", "fp16", ("EXPLICIT_BATCH",), ("FP16",)),
        ("8.6.2.3", "int8", ("EXPLICIT_BATCH",), ("INT8", "FP16")),
        ("10.3.0.26", "fp16", ("STRONGLY_TYPED",), ()),
        ("10.13.3", "int8", ("STRONGLY_TYPED",), ()),
    ],
)
def test_plans(version: str, precision: str, network: tuple[str, ...], builder: tuple[str, ...]) -> None:
    plan = build_plan(version, precision)
    assert plan.network_flags == network
    assert plan.builder_flags == builder


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_trt11_and_rtx_have_no_precision_flags(precision: str) -> None:
    for plan in (build_plan("11.4.0.106", precision), build_plan("1.7.1.116", precision, rtx=True)):
        assert plan.builder_flags == ()
        assert plan.network_flags == ()
        assert plan.optional_network_flags == ("STRONGLY_TYPED",)


@pytest.mark.parametrize("version", ["7.2.3", "8.4.1", "9.0.0", "12.0"])
def test_unsupported_versions_say_what_is_supported(version: str) -> None:
    with pytest.raises(SorterError, match=r"8\.5/8\.6, 10\.x, 11\.x"):
        build_plan(version, "fp16")


def test_unknown_precision() -> None:
    with pytest.raises(SorterError, match="fp32, fp16 or int8"):
        build_plan("10.3", "bf16")


@pytest.mark.parametrize("bad", ["", "not-a-version"])
def test_unparseable_versions(bad: str) -> None:
    with pytest.raises(SorterError, match="cannot parse"):
        build_plan(bad, "fp16")
