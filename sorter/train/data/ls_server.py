"""Push a batch to a running Label Studio and pull its annotations back.

Two clients speak the same three calls (create a project, import tasks, export the project as JSON):
``label-studio-sdk`` (the ``labelstudio`` extra, imported lazily) and a plain HTTP client on the standard
library, used when the SDK is not installed (the SDK pins OpenCV 4.12 and NumPy < 2.3, which a line's
environment may not want). Both authenticate with an access token: a legacy token (``Token``) or a personal
access token (a JWT refresh token, exchanged for an access token).

The project gets the labelling interface of :func:`labelstudio.labeling_config`; tasks carry the model's
predictions. Pulling reads the project's JSON export, the same format a user downloads, and goes through the
same validation as a file import. Images must be reachable by Label Studio: by default the tasks point at its
local-files serving (start Label Studio with ``LOCAL_FILES_SERVING_ENABLED=true`` and
``LOCAL_FILES_DOCUMENT_ROOT`` at or above the batch folder), or pass the URL the images are served under.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Literal, Protocol

from sorter.errors import ConfigError, DeviceNotConnectedError, MissingDependencyError
from sorter.train.data.batch import Batch
from sorter.train.data.labelstudio import labeling_config, to_tasks

ClientKind = Literal["auto", "sdk", "http"]
TIMEOUT_S = 60.0


class LabelStudioClient(Protocol):
    """The calls the data engine makes."""

    def create_project(self, title: str, label_config: str) -> int: ...

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None: ...

    def export(self, project_id: int) -> list[dict[str, Any]]: ...


class SdkClient:
    """Through ``label_studio_sdk.LabelStudio``."""

    def __init__(self, url: str, token: str) -> None:
        from label_studio_sdk import LabelStudio

        self.sdk = LabelStudio(base_url=url, api_key=token)  # type: ignore[no-untyped-call]

    def create_project(self, title: str, label_config: str) -> int:
        return int(_call("create a project", self.sdk.projects.create, title=title, label_config=label_config).id)

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        _call("import tasks", self.sdk.projects.import_tasks, id=project_id, request=tasks)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        chunks = _call(
            "export the project",
            lambda: b"".join(self.sdk.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=True)),
        )
        return _task_list(chunks, project_id)


class HttpClient:
    """The same calls over Label Studio's REST API with the standard library."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._auth = f"Token {token}"
        if token.count(".") == 2:  # a personal access token (JWT refresh token): get an access token
            body = self._request("POST", "/api/token/refresh", {"refresh": token}, auth=False)
            self._auth = f"Bearer {json.loads(body)['access']}"

    def _request(self, method: str, path: str, payload: Any = None, auth: bool = True) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", self._auth)
        what = f"{method} {path}"
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
                body: bytes = r.read()
                return body
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")[:200]
            if e.code in (401, 403):
                raise ConfigError(f"Label Studio refused the token ({what}: {e.code} {text}); check --token") from None
            raise DeviceNotConnectedError(f"Label Studio answered {e.code} to {what}: {text}") from None
        except OSError as e:
            raise DeviceNotConnectedError(f"cannot reach Label Studio at {self.url} ({what}: {e}); is it running?") from None

    def create_project(self, title: str, label_config: str) -> int:
        return int(json.loads(self._request("POST", "/api/projects", {"title": title, "label_config": label_config}))["id"])

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> None:
        self._request("POST", f"/api/projects/{project_id}/import", tasks)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        body = self._request("GET", f"/api/projects/{project_id}/export?exportType=JSON&download_all_tasks=true")
        return _task_list(body, project_id)


def _task_list(body: bytes, project_id: int) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as e:
        raise DeviceNotConnectedError(
            f"Label Studio's export of project {project_id} is not JSON ({e}); check the server log"
        ) from None
    if not isinstance(doc, list):
        raise DeviceNotConnectedError(f"Label Studio's export of project {project_id} is not a task list: {str(doc)[:200]}")
    return doc


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


def connect(url: str | None, token: str | None, kind: ClientKind = "auto") -> LabelStudioClient:
    """A client for ``url``; the token defaults to ``LABEL_STUDIO_API_KEY``; ``auto`` prefers the SDK when installed."""
    if not url:
        raise ConfigError("no Label Studio URL: pass --url http://HOST:PORT or set LABEL_STUDIO_URL")
    key = token or os.environ.get("LABEL_STUDIO_API_KEY")
    if not key:
        raise ConfigError(
            "no Label Studio API token: pass --token (Account & Settings > Access Token) or set LABEL_STUDIO_API_KEY"
        )
    if kind in ("auto", "sdk"):
        try:
            return SdkClient(url.rstrip("/"), key)
        except ImportError:
            if kind == "sdk":
                raise MissingDependencyError("label-studio-sdk", "labelstudio", "--client sdk") from None
    return HttpClient(url.rstrip("/"), key)


def push(client: LabelStudioClient, batch: Batch, *, title: str, url_prefix: str | None = None, min_score: float = 0.3) -> int:
    """Create a project for ``batch`` and import its tasks with predictions; returns the project id."""
    project_id = client.create_project(title, labeling_config(batch.class_names))
    client.import_tasks(project_id, to_tasks(batch, url_prefix=url_prefix, min_score=min_score))
    return project_id


def pull(client: LabelStudioClient, project_id: int) -> list[dict[str, Any]]:
    """The project's tasks as Label Studio's JSON export (annotations and predictions included)."""
    return client.export(project_id)
