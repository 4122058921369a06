"""The service's HTTP endpoint: health, status, Prometheus metrics, the operator console and token-guarded controls.

The endpoint is served by uvicorn and FastAPI (``sorter.runtime.web``) in a process
of its own, fed with snapshots by the line's process, so that no number of clients
can take the loop's interpreter. Bound to 127.0.0.1 unless the config says otherwise.

========================  ====================================================================================
``GET /healthz``          200 when running or paused, 503 with the reason otherwise
``GET /status``           JSON: state, reason, counters, latencies, faults (recent ones with their time), score
``GET /metrics``          Prometheus
``GET /``                 the operator console (live image, belt map with planned shots, status, counts)
``GET /frame.jpg``        the latest annotated frame (shared; encoded at most ``service.view_fps`` times a second)
``GET /stream.mjpg``      the same as an MJPEG stream
``GET /api/console``      the console's data (JSON)
``GET /openapi.json``     the API description
``POST /pause``           ``/resume``, ``/reload``, ``/rollback`` (the previous detector model): need a token
========================  ====================================================================================

With ``service.token_for_view`` (on by default when not on loopback) the page, image, stream and console data need
the token too: as the same header, as ``?token=``, or the cookie set by the page's login form.
"""

from __future__ import annotations

from sorter.runtime.web.bridge import WebBridge as StatusServer
from sorter.runtime.web.listen import EndpointError

__all__ = ["EndpointError", "StatusServer"]
