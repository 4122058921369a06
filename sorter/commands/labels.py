"""``sorter labels``: move a batch to the labelling tools and back (COCO for CVAT, Label Studio tasks, a live Label Studio)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sorter.errors import SorterError

HELP = (
    "export a batch for labelling (COCO 1.0 for CVAT, Label Studio tasks), import labels back validated, push/pull Label Studio"
)

MAX_PROBLEMS_SHOWN = 30


def _import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--class-map",
        action="append",
        default=[],
        metavar="MAP",
        help="SOURCE->CLASS pairs ('metal->alu_can,glass->-'), or a file of them; repeatable",
    )
    p.add_argument(
        "--unknown",
        choices=("refuse", "ignore"),
        default="refuse",
        help="classes neither mapped nor known: stop and list them (default) or drop them",
    )
    p.add_argument(
        "--empty",
        choices=("refuse", "negative", "skip"),
        default="refuse",
        help="frames without labels: stop (default), take them as bare belt, or leave them unlabelled",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="labels_cmd", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="write a batch as a CVAT COCO 1.0 dataset or Label Studio tasks with predictions")
    e.add_argument("batch", type=Path, metavar="BATCH")
    e.add_argument("--format", choices=("coco", "labelstudio"), required=True)
    e.add_argument("--out", type=Path, required=True, metavar="PATH", help="folder (coco) or tasks JSON file (labelstudio)")
    e.add_argument("--min-score", type=float, default=0.3, help="lowest prediction score exported as a pre-annotation")
    e.add_argument("--predictions", action="store_true", help="coco: export predictions even for labelled frames")
    e.add_argument(
        "--url-prefix", default=None, help="labelstudio: URL the images are served under (default: local-files serving)"
    )
    i = sub.add_parser("import", help="read labels from a COCO file or a Label Studio JSON export into the batch")
    i.add_argument("batch", type=Path, metavar="BATCH")
    g = i.add_mutually_exclusive_group(required=True)
    g.add_argument("--coco", type=Path, metavar="FILE", help="COCO annotations (CVAT 'COCO 1.0' export or any COCO file)")
    g.add_argument("--labelstudio", type=Path, metavar="FILE", help="Label Studio export in JSON format")
    i.add_argument(
        "--partial", action="store_true", help="labels of images that are not frames of the batch are skipped, not refused"
    )
    _import_options(i)
    f = sub.add_parser("from-coco", help="make a new batch from a foreign COCO dataset (images copied, classes mapped)")
    f.add_argument("coco", type=Path, metavar="FILE")
    f.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of the COCO file's images")
    f.add_argument("--out", type=Path, required=True, metavar="DIR", help="new batch folder")
    f.add_argument("--recording", default=None, help="recording id of every frame (default: the COCO file's name)")
    _import_options(f)
    for name, text in (
        ("push", "create a Label Studio project from a batch (tasks with predictions)"),
        ("pull", "read a Label Studio project's annotations into the batch"),
    ):
        q = sub.add_parser(name, help=text)
        q.add_argument("batch", type=Path, metavar="BATCH")
        q.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"), help="Label Studio URL (or LABEL_STUDIO_URL)")
        q.add_argument("--token", default=None, help="API token (default: LABEL_STUDIO_API_KEY)")
        q.add_argument("--client", choices=("auto", "sdk", "http"), default="auto",
                       help="label-studio-sdk (the 'labelstudio' extra) or plain HTTP; auto: the SDK when installed")
        if name == "push":
            q.add_argument("--title", default=None, help="project title (default: the batch folder name)")
            q.add_argument("--min-score", type=float, default=0.3)
            q.add_argument("--url-prefix", default=None, help="URL the images are served under (default: local-files serving)")
        else:
            q.add_argument("--project", type=int, required=True, help="project id printed by push")
            _import_options(q)


def _print_problems(e: SorterError) -> None:
    problems = getattr(e, "problems", [str(e)])
    print(f"sorter labels: {len(problems)} problem(s):", file=sys.stderr)
    for line in problems[:MAX_PROBLEMS_SHOWN]:
        print(f"  - {line}", file=sys.stderr)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        print(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    from sorter.entities import MATERIAL_CLASSES
    from sorter.train.data import coco_io, labelstudio
    from sorter.train.data.batch import read_batch, write_batch
    from sorter.train.data.classmap import load_class_map

    try:
        if args.labels_cmd == "from-coco":
            cmap = load_class_map(args.class_map, MATERIAL_CLASSES, args.unknown)
            batch, report = coco_io.batch_from_coco(
                args.coco, args.images, args.out, cmap, empty=args.empty, recording=args.recording or args.coco.stem
            )
            write_batch(batch)
            print(f"new batch {args.out}: {report.summary()}")
            return 0
        batch = read_batch(args.batch)
        if args.labels_cmd == "export":
            if args.format == "coco":
                path = coco_io.export_coco(batch, args.out, min_score=args.min_score, predictions=args.predictions)
            else:
                path = labelstudio.write_tasks(batch, args.out, url_prefix=args.url_prefix, min_score=args.min_score)
            print(f"wrote {path} ({len(batch.frames)} frames)")
            return 0
        if args.labels_cmd == "push":
            from sorter.train.data.ls_server import connect, push

            client = connect(args.url, args.token, args.client)
            project_id = push(
                client, batch, title=args.title or batch.root.name, url_prefix=args.url_prefix, min_score=args.min_score
            )
            print(
                f"Label Studio project {project_id}: {len(batch.frames)} tasks with predictions; pull with --project {project_id}"
            )
            return 0
        cmap = load_class_map(args.class_map, batch.class_names, args.unknown)
        if args.labels_cmd == "pull":
            from sorter.train.data.ls_server import connect, pull

            tasks = pull(connect(args.url, args.token, args.client), args.project)
            labels, report = labelstudio.read_export(tasks, batch, cmap, empty=args.empty, source=f"project {args.project}")
            partial = False
        elif args.coco is not None:
            labels, report = coco_io.read_coco(args.coco, cmap, empty=args.empty)
            partial = args.partial
        else:
            tasks = labelstudio.load_export(args.labelstudio)
            labels, report = labelstudio.read_export(tasks, batch, cmap, empty=args.empty, source=str(args.labelstudio))
            partial = args.partial
        source = getattr(args, "coco", None) or getattr(args, "labelstudio", None) or f"project {getattr(args, 'project', '')}"
        report.raise_if_problems(str(source))
        if partial:
            names = {Path(f.file).name for f in batch.frames} | {f.file for f in batch.frames}
            labels = {k: v for k, v in labels.items() if k in names or Path(k).name in names}
        updated = coco_io.merge_labels(batch, labels, report, str(args.batch))
        write_batch(updated)
        done = sum(1 for f in updated.frames if f.labels is not None)
        print(f"imported {report.summary()}; {done} of {len(updated.frames)} frames of {args.batch} are labelled")
        return 0
    except SorterError as e:
        _print_problems(e)
        return 2
