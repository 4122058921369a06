"""Bad detector models get a clear error naming the file and the fix, never a traceback, and never a silent run that
detects nothing: renamed inputs/outputs, another input shape, wrong output shapes, non-JSON or wrong-typed metadata,
truncated files, random bytes, garbage outputs. Each model is a real ONNX file (a corrupted copy of the shipped one,
or a small graph built with the onnx helper API) loaded by a real ONNX Runtime session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sorter.cli import main as cli_main
from sorter.config import load_config
from sorter.detect.model_files import default_model_path
from sorter.detect.registry import create_detector
from sorter.detect.spec import PRECISION_METADATA_KEY, SPEC_METADATA_KEY, ModelSpec
from sorter.entities import MATERIAL_CLASSES
from sorter.errors import ConfigError

SPEC = ModelSpec()


def _shipped() -> onnx.ModelProto:
    return onnx.load(str(default_model_path()))


def _set_meta(model: onnx.ModelProto, key: str, value: str) -> None:
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    model.metadata_props.add(key=key, value=value)


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    for t in [*model.graph.input, *model.graph.output]:
        if t.name == old:
            t.name = new
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def _spec_json(**over: object) -> str:
    d = json.loads(SPEC.to_json())
    d.update(over)
    return json.dumps(d)


def _constant_model(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    *,
    declared: bool = True,
    spec: str | None = None,
) -> onnx.ModelProto:
    """A graph that ignores its input and answers constants: a stand-in for a model trained wrong."""
    outs = {"boxes": boxes.astype(np.float32), "scores": scores.astype(np.float32), "classes": classes.astype(np.int64)}
    nodes = [
        helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, f"{name}_value"))
        for name, arr in outs.items()
    ]
    outputs = [
        helper.make_tensor_value_info(
            name,
            TensorProto.INT64 if name == "classes" else TensorProto.FLOAT,
            list(arr.shape) if declared else None,
        )
        for name, arr in outs.items()
    ]
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SPEC.input_h_px, SPEC.input_w_px])
    graph = helper.make_graph(nodes, "constant", [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    _set_meta(model, SPEC_METADATA_KEY, spec or SPEC.to_json())
    _set_meta(model, PRECISION_METADATA_KEY, "fp32")
    return model


K = SPEC.top_k
QUIET = (np.zeros((1, K, 4)), np.zeros((1, K)), np.zeros((1, K)))


def _write(path: Path, model: onnx.ModelProto) -> None:
    onnx.save(model, str(path))


def _renamed_input(p: Path) -> None:
    m = _shipped()
    _rename(m, "images", "input")
    _write(p, m)


def _renamed_output(p: Path) -> None:
    m = _shipped()
    _rename(m, "scores", "confidence")
    _write(p, m)


def _metadata_other_size(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, _spec_json(input_w_px=416, input_h_px=256))
    _write(p, m)


def _metadata_other_top_k(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, _spec_json(top_k=50))
    _write(p, m)


def _input_other_shape(p: Path) -> None:
    m = _shipped()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = 320, 320
    _write(p, m)


def _non_json_metadata(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, "{input_w_px: 384, not json")
    _write(p, m)


def _wrong_typed_metadata(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, _spec_json(input_w_px="384"))
    _write(p, m)


def _class_names_as_text(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, _spec_json(class_names="pet_bottle"))
    _write(p, m)


def _metadata_a_list(p: Path) -> None:
    m = _shipped()
    _set_meta(m, SPEC_METADATA_KEY, "[1, 2, 3]")
    _write(p, m)


def _bad_precision(p: Path) -> None:
    m = _shipped()
    _set_meta(m, PRECISION_METADATA_KEY, "fp8")
    _write(p, m)


def _truncated(p: Path) -> None:
    raw = default_model_path().read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _truncated_at_end(p: Path) -> None:
    raw = default_model_path().read_bytes()
    p.write_bytes(raw[:-100])


def _random_bytes(p: Path) -> None:
    p.write_bytes(np.random.default_rng(7).integers(0, 256, 200_000, dtype=np.uint8).tobytes())


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _wrong_output_shapes(p: Path) -> None:
    _write(p, _constant_model(np.zeros((1, K, 5)), np.zeros((1, K)), np.zeros((1, K))))


def _undeclared_wrong_output_shapes(p: Path) -> None:
    _write(p, _constant_model(np.zeros((K, 4)), np.zeros((1, 7)), np.zeros((1, K)), declared=False))


def _nan_scores(p: Path) -> None:
    _write(p, _constant_model(QUIET[0], np.full((1, K), np.nan), QUIET[2]))


def _everything_everywhere(p: Path) -> None:  # a blank belt full of confident "objects"
    boxes = np.tile(np.array([10.0, 10.0, 60.0, 60.0]), (1, K, 1))
    _write(p, _constant_model(boxes, np.full((1, K), 0.99), QUIET[2]))


def _scores_out_of_range(p: Path) -> None:
    _write(p, _constant_model(QUIET[0], np.full((1, K), 7.0), QUIET[2]))


def _unknown_class_ids(p: Path) -> None:
    _write(p, _constant_model(QUIET[0], QUIET[1], np.full((1, K), 17)))


def _unknown_classes_in_metadata(p: Path) -> None:
    spec = _spec_json(class_names=["pet_bottle", "glass_jar"])
    _write(p, _constant_model(*QUIET, spec=spec))


BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "renamed-input": (_renamed_input, "expected one input named 'images'"),
    "renamed-output": (_renamed_output, "missing ['scores']"),
    "metadata-other-size": (_metadata_other_size, "its metadata says 1x3x256x416"),
    "metadata-other-top-k": (_metadata_other_top_k, "expected 1x50x4 (top_k = 50)"),
    "input-other-shape": (_input_other_shape, "ONNX Runtime cannot load|its input 'images' is 1x3x320x320"),
    "non-json-metadata": (_non_json_metadata, "unusable 'sorter.model_spec' metadata"),
    "wrong-typed-metadata": (_wrong_typed_metadata, "'input_w_px' = '384' must be a whole number"),
    "class-names-as-text": (_class_names_as_text, "'class_names' must be a list of class names"),
    "metadata-a-list": (_metadata_a_list, "must be a JSON object"),
    "bad-precision": (_bad_precision, "'sorter.precision' = 'fp8'"),
    "truncated": (_truncated, "is not a readable ONNX file|ONNX Runtime cannot load"),
    "truncated-at-end": (_truncated_at_end, "is not a readable ONNX file|ONNX Runtime cannot load"),
    "random-bytes": (_random_bytes, "is not a readable ONNX file"),
    "empty": (_empty, "has no 'sorter.model_spec' metadata|is not a readable ONNX file"),
    "wrong-output-shapes": (_wrong_output_shapes, "its output 'boxes' is 1x100x5, expected 1x100x4"),
    "undeclared-wrong-output-shapes": (
        _undeclared_wrong_output_shapes,
        "its output 'boxes' is 100x4|one inference gave 'boxes' of shape 100x4",
    ),
    "nan-scores": (_nan_scores, "non-finite 'scores'"),
    "garbage-everywhere": (_everything_everywhere, "on a blank frame it reports 100 objects"),
    "scores-out-of-range": (_scores_out_of_range, "scores from 7 to 7, outside 0..1"),
    "unknown-class-ids": (_unknown_class_ids, "class ids from 17 to 17"),
    "unknown-classes": (_unknown_classes_in_metadata, "predicts classes ['glass_jar'] that the line does not know"),
}


def _model_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    BAD[name][0](path)
    return path


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_model_is_refused_with_the_file_and_the_reason(tmp_path: Path, name: str) -> None:
    path = _model_file(tmp_path, name)
    cfg = load_config(None, ["detector.type=onnxruntime", f"detector.model={path}"])
    with pytest.raises(ConfigError) as e:
        create_detector(cfg, MATERIAL_CLASSES).close()
    text = str(e.value)
    assert str(path) in text or "detector.model" in text
    assert any(words in text for words in BAD[name][1].split("|")), text
    assert len(text) < 1000


def test_a_well_formed_constant_model_passes_the_same_checks(tmp_path: Path) -> None:
    path = tmp_path / "quiet.onnx"
    _write(path, _constant_model(*QUIET))
    cfg = load_config(None, ["detector.type=onnxruntime", f"detector.model={path}"])
    create_detector(cfg, MATERIAL_CLASSES).close()  # the positive control: no false refusals


@pytest.mark.parametrize("name", ["renamed-input", "wrong-typed-metadata", "truncated", "nan-scores", "garbage-everywhere"])
def test_check_fails_the_model_and_run_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = _model_file(tmp_path, name)
    model = ["--set", "detector.type=onnxruntime", "--set", f"detector.model={path}"]
    assert cli_main(["check", *model]) == 2
    cap = capsys.readouterr()
    fail = [ln for ln in cap.out.splitlines() if ln.startswith("  FAIL")]
    assert len(fail) == 1 and fail[0].split()[1] == "model" and path.name in fail[0]
    assert "Traceback" not in cap.out + cap.err
    assert cli_main(["run", "--fast", "--duration", "2", "--quiet", *model]) == 2
    cap = capsys.readouterr()
    assert "cannot start: detector.model" in cap.err and path.name in cap.err
    assert "Traceback" not in cap.out + cap.err


def test_a_model_without_the_policy_targets_fails_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two-classes.onnx"
    _write(path, _constant_model(*QUIET, spec=_spec_json(class_names=["pet_bottle", "film"])))
    model = ["--set", "detector.type=onnxruntime", "--set", f"detector.model={path}"]
    assert cli_main(["check", *model, "--set", "policy.targets=[pet_bottle, alu_can]"]) == 2
    out = capsys.readouterr().out
    assert "detector.model does not detect ['alu_can'], which policy.targets sorts out" in out
    assert cli_main(["check", *model, "--set", "policy.targets=[pet_bottle]"]) == 0
    assert "one inference on a blank frame checked" in capsys.readouterr().out


def test_an_unreadable_model_file_is_named(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        path = tmp_path / "folder.onnx"  # root reads every file: a folder where the file should be instead
        path.mkdir()
    else:
        path = tmp_path / "locked.onnx"
        _renamed_input(path)
        path.chmod(0)
    cfg = load_config(None, ["detector.type=onnxruntime", f"detector.model={path}"])
    with pytest.raises(ConfigError) as e:
        create_detector(cfg, MATERIAL_CLASSES).close()
    assert path.name in str(e.value)
