"""Where model files live and what they say about themselves.

The packaged default model is ``sorter/models/default.onnx``. Precision
variants sit beside a model as ``<stem>.fp16.onnx`` and ``<stem>.int8.onnx``,
and golden outputs for the parity self-test as ``<stem>.golden.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sorter.detect.spec import PRECISION_METADATA_KEY, SPEC_METADATA_KEY, ModelSpec
from sorter.errors import ConfigError

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL_NAME = "default.onnx"
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")


def default_model_path() -> Path:
    """Path of the packaged default ONNX model (FP32)."""
    return MODELS_DIR / DEFAULT_MODEL_NAME


def base_stem(path: Path) -> str:
    """``default`` for ``default.onnx``, ``default.fp16.onnx`` and ``default.int8.onnx``."""
    stem = path.name.removesuffix(".onnx")
    for p in PRECISIONS[1:]:
        stem = stem.removesuffix(f".{p}")
    return stem


def variant_path(model: Path, precision: str) -> Path:
    """The file of ``model`` in ``precision`` (``fp32`` is the base file)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"detector.precision = {precision!r}: expected one of {', '.join(PRECISIONS)}")
    stem = base_stem(model)
    name = f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"
    return model.with_name(name)


def golden_path(model: Path) -> Path:
    """Golden outputs file for the parity self-test of ``model`` (shared by all its variants)."""
    return model.with_name(f"{base_stem(model)}.golden.json")


def resolve_model(model: str | None, precision: str = "fp32") -> Path:
    """The ONNX file a backend should load for ``detector.model`` and ``detector.precision``.

    Raises:
        ConfigError: when the file (or its precision variant) does not exist, saying how to get it.
    """
    base = Path(model) if model else default_model_path()
    path = variant_path(base, precision)
    if not path.exists():
        if not base.exists():
            hint = (
                "reinstall the package (the default model ships in sorter/models/)"
                if model is None
                else "check detector.model, or train one with 'sorter train'"
            )
            raise ConfigError(f"detector.model: model file '{base}' does not exist; {hint}")
        raise ConfigError(
            f"detector.precision = {precision!r}: '{path.name}' is missing beside '{base}'; "
            f"export it with 'sorter train --export-only --out {base.parent}' or use detector.precision=fp32"
        )
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelInfo:
    """What an ONNX model file says about itself.

    Attributes:
        path: the file.
        spec: architecture and I/O contract.
        precision: ``fp32``, ``fp16`` or ``int8``.
        metadata: every metadata entry (provenance: seed, data recipe, metrics...).
    """

    path: Path
    spec: ModelSpec
    precision: str
    metadata: dict[str, str]


def read_model_info(path: Path) -> ModelInfo:
    """Read the spec and metadata of a sorter ONNX model.

    Raises:
        ConfigError: when the file is not an ONNX model exported by sorter.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError...
        raise ConfigError(
            f"detector.model: '{path}' is not a readable ONNX file ({e}); point it at a .onnx written by 'sorter train'"
        ) from None
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_METADATA_KEY not in meta:
        raise ConfigError(
            f"detector.model: '{path}' has no '{SPEC_METADATA_KEY}' metadata, so it was not exported by 'sorter train'; "
            "only sorter's own detector models are supported"
        )
    try:
        spec = ModelSpec.from_json(meta[SPEC_METADATA_KEY])
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise ConfigError(
            f"detector.model: '{path}' has unusable '{SPEC_METADATA_KEY}' metadata ({str(e)[:200]}); "
            "export the model again with 'sorter train --export-only'"
        ) from None
    precision = meta.get(PRECISION_METADATA_KEY, "fp32")
    if precision not in PRECISIONS:
        raise ConfigError(
            f"detector.model: '{path}' says '{PRECISION_METADATA_KEY}' = {precision[:40]!r}, expected one of "
            f"{', '.join(PRECISIONS)}; export the model again with 'sorter train --export-only'"
        )
    return ModelInfo(path, spec, precision, meta)
