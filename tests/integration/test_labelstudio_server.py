"""Label Studio round trip against a real Label Studio server started on loopback (and stopped after).

Label Studio has many dependencies, so it lives in its own virtual environment: ``.venv-labelstudio`` at the
root of the checkout (``python3 -m venv .venv-labelstudio && .venv-labelstudio/bin/pip install label-studio==1.23.2``)
or the ``label-studio`` program named by ``SORTER_LABEL_STUDIO``. The first run migrates a database once into
``.venv-labelstudio/sorter-test-data`` (minutes); every run starts from a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from labelstudio_peer import TOKEN, find_program, free_port, prepare_template, start, stop, wait_up

from sorter.cli import main as cli_main
from sorter.train.data.batch import read_batch, write_batch

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT.parent / "shared" / "data" / "video" / "delta_robot_green_belt" / "conveyor_belt.mp4"
LABELS = ROOT / "tests" / "data" / "conveyor_belt_labels.json"
ROI = "78,214,290,112"


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    program = find_program()
    if program is None:
        pytest.skip(
            "Label Studio is not installed: python3 -m venv .venv-labelstudio && "
            ".venv-labelstudio/bin/pip install label-studio==1.23.2 (.ci/run does this)"
        )
    template = prepare_template(program)
    data = tmp_path_factory.mktemp("ls") / "data"
    shutil.copytree(template, data)
    port = free_port()
    proc = start(program, data, port, first=False)
    try:
        wait_up(proc, port, 600)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _api(url: str, method: str, path: str, payload: object = None) -> object:
    req = urllib.request.Request(url + path, data=None if payload is None else json.dumps(payload).encode(), method=method)
    req.add_header("Authorization", f"Token {TOKEN}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def _labelled_batch(tmp_path: Path) -> tuple[Path, list]:  # type: ignore[type-arg]
    """Frames of the real video with the model's predictions; their true labels kept aside, the batch unlabelled."""
    batch_dir = tmp_path / "batch"
    assert cli_main(["collect", str(batch_dir), "--video", str(VIDEO), "--roi", ROI, "--keep-all", "--every", "16"]) == 0
    assert cli_main(["labels", "import", str(batch_dir), "--coco", str(LABELS), "--partial", "--empty", "negative"]) == 0
    labelled = read_batch(batch_dir)
    assert sum(1 for f in labelled.frames if f.labels) >= 5
    write_batch(labelled.with_frames([type(f)(**{**f.__dict__, "labels": None}) for f in labelled.frames]))
    return batch_dir, list(labelled.frames)


def _check_predictions_and_annotate(url: str, project: int, labelled_frames: list) -> int:  # type: ignore[type-arg]
    """Every pre-annotation is a prediction in Label Studio; then an annotator draws the true boxes."""
    from sorter.train.data.batch import Batch
    from sorter.train.data.labelstudio import to_tasks

    expected = {t["data"]["sorter_file"]: t for t in to_tasks(Batch(Path("."), MATERIAL, tuple(labelled_frames)), min_score=0.3)}
    tasks = _api(url, "GET", f"/api/tasks?project={project}&page_size=1000")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert len(tasks) == len(labelled_frames)
    n_pred = 0
    for t in tasks:
        mine = expected[t["data"]["sorter_file"]]
        preds = _api(url, "GET", f"/api/predictions?task={t['id']}")
        want = mine["predictions"][0]["result"]
        if want:
            assert len(preds) == 1 and preds[0]["model_version"] == "sorter"
            got = preds[0]["result"]
            def labels_scores(rs: list) -> list:  # type: ignore[type-arg]
                return [(r["value"]["rectanglelabels"], r["score"]) for r in rs]

            assert labels_scores(got) == labels_scores(want)
            for g, w in zip(got, want, strict=True):
                for k in ("x", "y", "width", "height"):
                    assert g["value"][k] == pytest.approx(w["value"][k], abs=1e-9)
            n_pred += len(got)
        # bare-belt frames are submitted empty; frames never labelled are left alone
        if "annotations" in mine:
            _api(url, "POST", f"/api/tasks/{t['id']}/annotations", {"result": mine["annotations"][0]["result"]})
    return n_pred


MATERIAL = ("pet_bottle", "hdpe_container", "alu_can", "cardboard", "paper", "film")


@pytest.mark.timeout(1800)
@pytest.mark.skipif(not VIDEO.exists(), reason="the shared conveyor video is not present")
def test_push_annotate_pull_returns_every_box_to_the_pixel(label_studio: str, tmp_path: Path) -> None:
    batch_dir, truth = _labelled_batch(tmp_path)
    creds = ["--url", label_studio, "--token", TOKEN, "--client", "http"]
    assert cli_main(["labels", "push", str(batch_dir), *creds, "--min-score", "0.3", "--title", "http"]) == 0
    project = max(p["id"] for p in _api(label_studio, "GET", "/api/projects")["results"])  # type: ignore[index]
    assert _check_predictions_and_annotate(label_studio, project, truth) > 0
    assert cli_main(["labels", "pull", str(batch_dir), *creds, "--project", str(project), "--empty", "negative"]) == 0
    back = read_batch(batch_dir)
    for a, b in zip(truth, back.frames, strict=True):
        assert b.labels == a.labels, a.file  # identical boxes, classes and attributes, to the pixel; unlabelled stays None


@pytest.mark.timeout(1800)
@pytest.mark.skipif(not VIDEO.exists(), reason="the shared conveyor video is not present")
def test_the_same_round_trip_through_label_studio_sdk(label_studio: str, tmp_path: Path) -> None:
    """label-studio-sdk pins OpenCV and NumPy versions of its own, so it runs from Label Studio's environment
    (which ships it) on the same sorter modules; the labels it pulls are validated here."""
    program = find_program()
    assert program is not None
    python = program.parent / "python"
    batch_dir, truth = _labelled_batch(tmp_path)
    script = (
        "import json, sys\n"
        "from sorter.train.data.batch import read_batch\n"
        "from sorter.train.data.ls_server import SdkClient, push, pull\n"
        "c = SdkClient(sys.argv[1], sys.argv[2])\n"
        "pid = push(c, read_batch(sys.argv[3]), title='sdk', min_score=0.3)\n"
        "print(pid)\n"
    )
    out = subprocess.run([str(python), "-c", script, label_studio, TOKEN, str(batch_dir)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    project = int(out.stdout.strip().splitlines()[-1])
    assert _check_predictions_and_annotate(label_studio, project, truth) > 0
    pulled = tmp_path / "export.json"
    script = (
        "import json, sys\n"
        "from sorter.train.data.ls_server import SdkClient, pull\n"
        "open(sys.argv[4], 'w').write(json.dumps(pull(SdkClient(sys.argv[1], sys.argv[2]), int(sys.argv[3]))))\n"
    )
    out = subprocess.run([str(python), "-c", script, label_studio, TOKEN, str(project), str(pulled)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert cli_main(["labels", "import", str(batch_dir), "--labelstudio", str(pulled), "--empty", "negative"]) == 0
    back = read_batch(batch_dir)
    for a, b in zip(truth, back.frames, strict=True):
        assert b.labels == a.labels, a.file
