"""Push a batch to a running Label Studio and pull its annotations back, through ``label-studio-sdk`` (the
``labelstudio`` extra, imported lazily).

The project is created with the labelling interface of :func:`labelstudio.labeling_config`; tasks carry
the model's predictions. Pulling reads the project's JSON export, the same format a user downloads, and
goes through the same validation as a file import. Images must be reachable by Label Studio: by default
the tasks point at its local-files serving (start Label Studio with ``LOCAL_FILES_SERVING_ENABLED=true``
and ``LOCAL_FILES_DOCUMENT_ROOT`` at or above the batch folder), or pass the URL the images are served under.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sorter.errors import ConfigError, DeviceNotConnectedError, MissingDependencyError
from sorter.train.data.batch import Batch
from sorter.train.data.labelstudio import labeling_config, to_tasks


def connect(url: str | None, token: str | None) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client; the token defaults to ``LABEL_STUDIO_API_KEY``."""
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise MissingDependencyError("label-studio-sdk", "labelstudio", "pushing to and pulling from Label Studio") from None
    if not url:
        raise ConfigError("no Label Studio URL: pass --url http://HOST:PORT or set LABEL_STUDIO_URL")
    key = token or os.environ.get("LABEL_STUDIO_API_KEY")
    if not key:
        raise ConfigError(
            "no Label Studio API token: pass --token (Account & Settings > Access Token) or set LABEL_STUDIO_API_KEY"
        )
    return LabelStudio(base_url=url.rstrip("/"), api_key=key)


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # httpx / SDK errors: report what failed and how to check it
        text = str(e)
        if "401" in text or "403" in text:
            raise ConfigError(f"Label Studio refused the token while trying to {what} ({text[:200]}); check --token") from None
        raise DeviceNotConnectedError(
            f"cannot {what} on Label Studio ({type(e).__name__}: {text[:200]}); is it running at --url?"
        ) from None


def push(client: Any, batch: Batch, *, title: str, url_prefix: str | None = None, min_score: float = 0.3) -> int:
    """Create a project for ``batch`` and import its tasks with predictions; returns the project id."""
    project = _call("create a project", client.projects.create, title=title, label_config=labeling_config(batch.class_names))
    tasks = to_tasks(batch, url_prefix=url_prefix, min_score=min_score)
    _call("import tasks", client.projects.import_tasks, id=project.id, request=tasks)
    return int(project.id)


def pull(client: Any, project_id: int) -> list[dict[str, Any]]:
    """The project's tasks as Label Studio's JSON export (annotations and predictions included)."""
    chunks = _call(
        "export the project",
        lambda: b"".join(client.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=True)),
    )
    try:
        doc = json.loads(chunks)
    except json.JSONDecodeError as e:
        raise DeviceNotConnectedError(
            f"Label Studio's export of project {project_id} is not JSON ({e}); check the server log"
        ) from None
    if not isinstance(doc, list):
        raise DeviceNotConnectedError(f"Label Studio's export of project {project_id} is not a task list: {str(doc)[:200]}")
    return doc
