"""The service's web side: the HTTP endpoint (control API, Prometheus metrics, live image) and the operator console.

The line's process keeps the state (:class:`sorter.runtime.service.LineService`) and a
:class:`~sorter.runtime.web.bridge.WebBridge` publishes snapshots of it (status, metrics,
console data, the latest annotated JPEG) a few times per second to a separate web-server
process (``server.py``: uvicorn + FastAPI), which answers every client from those
snapshots and sends control requests (pause, resume, reload) back. A flood of clients
therefore costs the web process's CPU, never the loop's interpreter.
"""
