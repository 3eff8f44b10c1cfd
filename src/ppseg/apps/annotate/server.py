"""The HTTP side of ``ppseg annotate``: a Starlette app over a :class:`~.project.Project`.

The endpoints are listed in ``API.md`` beside this file. What keeps the server safe and up:

* **No paths from the network.** Images are addressed by index, static files by name from a fixed
  list (the files of ``static/``); exports go to ``OUT/exports/<format>``. Nothing the client sends
  becomes a file path, so ``..``, absolute, symlinked or URL-encoded paths reach nothing.
* **Bounded requests.** Bodies over :data:`MAX_BODY` (1 MiB for a labels file) are refused with
  413 before they are read whole; JSON of the wrong shape is a 400 naming the field.
* **Who may ask.** On a loopback bind only loopback Host headers are served (421 otherwise: DNS
  rebinding); with any other ``--host`` every request needs the random token printed at start
  (header ``X-PPSeg-Token``, ``?token=`` or the cookie the page gets).
* **Errors are answers.** Every failure is ``{"error": "..."}`` with a 4xx/5xx status; an
  unexpected exception is logged and answered 500, and the server goes on.
* Nothing from the network is unpickled; weights are loaded once, from the command line.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from ...errors import PPSegError
from .project import AnnotateError, NotFound, Project, TooLarge

log = logging.getLogger("ppseg")

__all__ = ["create_app", "STATIC_DIR", "MAX_BODY", "TOKEN_HEADER"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY = 8 << 20
MAX_LABELS_BODY = 1 << 20
TOKEN_HEADER = "x-ppseg-token"
TOKEN_COOKIE = "ppseg_token"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
          ".json": "application/json"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class _Guard:
    """ASGI middleware: Host check, token check, the Content-Length bound, and a last-resort error answer."""

    def __init__(self, app: Any, token: str | None, hosts: set[str]) -> None:
        self.app, self.token, self.hosts = app, token, hosts

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if self.hosts and hostname.lower() not in self.hosts:
            await _send_json(send, 421, {"error": f"Host {host!r} is not served here (use http://127.0.0.1)"})
            return
        path = scope.get("path", "")
        if self.token is not None and not self._authorised(scope, headers, path):
            await _send_json(send, 401, {"error": "missing or wrong token: open the URL printed by ppseg annotate "
                                                  "(it ends in ?token=...)"})
            return
        limit = MAX_LABELS_BODY if path == "/api/labels/import" else MAX_BODY
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _send_json(send, 413, {"error": f"request body over {limit >> 20} MiB"})
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)  # a chunked body is bounded as it is read (read_body)
        except Exception:  # noqa: BLE001 - the server stays up; the log has the traceback
            log.exception("ppseg annotate: unexpected error on %s", path)
            if not started:
                await _send_json(send, 500, {"error": "internal error (see the server's log); nothing was lost"})

    def _authorised(self, scope: dict, headers: dict[str, str], path: str) -> bool:
        from urllib.parse import parse_qs

        given = headers.get(TOKEN_HEADER)
        if given is None:
            given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [None])[0]
        if given is None:
            for part in headers.get("cookie", "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == TOKEN_COOKIE:
                    given = v
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]


async def _send_json(send: Callable, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(project: Project, *, token: str | None = None, host: str = "127.0.0.1",
               models: list[dict[str, Any]] | None = None,
               load_model: Callable[[str], Any] | None = None) -> Any:
    """The ASGI app. ``token``: required on every request when given (non-loopback binds);
    ``host``: the bound address (a loopback bind serves loopback Host headers only); ``models``:
    what the model selector offers (``name``, ``summary``); ``load_model(name)``: loads one."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from .exports import FORMATS

    lock = project.lock
    jobs: dict[str, dict[str, Any]] = {}
    models = list(models or [])
    loaded: dict[str, Any] = {}
    if project.predictor is not None and project.model:
        loaded[project.model] = project.predictor

    def fail(e: PPSegError) -> JSONResponse:
        status = getattr(e, "status", 400)
        return JSONResponse({"error": str(e)}, status_code=status)

    def endpoint(fn: Callable[..., Any], locked: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: PPSegError -> its status; sync work runs in a thread, under the project's
        lock unless ``locked`` is False (tiles: the image cache has its own lock)."""
        import anyio

        async def handler(request: Request) -> Response:
            try:
                body: Any = None
                if request.method in ("POST", "PUT", "PATCH"):
                    raw = await read_body(request)
                    if request.url.path == "/api/labels/import":
                        try:
                            body = raw.decode("utf-8-sig")
                        except UnicodeDecodeError:
                            raise AnnotateError("labels.txt: not UTF-8 text") from None
                    elif raw:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            raise AnnotateError("request body is not valid JSON") from None
                    else:
                        body = {}

                def work() -> Any:
                    if not locked:
                        return fn(request, body)
                    with lock:
                        return fn(request, body)

                out = await anyio.to_thread.run_sync(work)
            except PPSegError as e:
                return fail(e)
            if isinstance(out, Response):
                return out
            return JSONResponse(out)

        return handler

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the bound, also when it comes chunked without
        a Content-Length (the guard checks that header before anything is read)."""
        limit = MAX_LABELS_BODY if request.url.path == "/api/labels/import" else MAX_BODY
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"request body over {limit >> 20} MiB")
            chunks.append(chunk)
        return b"".join(chunks)

    def field(body: Any, name: str, default: Any = ...) -> Any:
        if not isinstance(body, dict):
            raise AnnotateError("request body: expected a JSON object")
        if name not in body:
            if default is ...:
                raise AnnotateError(f"request body: missing field {name!r}")
            return default
        return body[name]

    def image_index(request: Request) -> int:
        raw = request.path_params["i"]
        if not raw.isdigit():
            raise NotFound(f"image {raw!r} does not exist")
        return project.index(int(raw))

    def object_id(request: Request) -> int:
        raw = request.path_params["oid"]
        if not raw.isdigit():
            raise NotFound(f"object {raw!r} does not exist")
        return int(raw)

    def state(st: Any) -> dict[str, Any]:
        return {"state": project.state_dict(st)}

    # ------------------------------------------------------------------ page and static files
    static_files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()} if STATIC_DIR.is_dir() else {}

    async def index(request: Request) -> Response:
        page = static_files.get("index.html")
        if page is None:
            return PlainTextResponse("the page is missing from this installation", status_code=500)
        resp = Response(page.read_bytes(), media_type=_TYPES[".html"], headers={"Cache-Control": "no-store"})
        if token is not None:
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return resp

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        p = static_files.get(name)  # only the shipped files, by exact name
        if p is None:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return Response(p.read_bytes(), media_type=_TYPES.get(p.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------ project
    def get_project(request: Request, body: Any) -> dict[str, Any]:
        return {"input": str(project.input), "out": str(project.out), "kind": project.kind,
                "count": len(project.records), "done": project.done_count(), "current": project.current,
                "model": project.model, "models": models, "settings": project.settings.to_dict(),
                "formats": list(FORMATS), "labels": [lab.to_dict() for lab in project.labels]}

    def put_current(request: Request, body: Any) -> dict[str, Any]:
        return {"current": project.set_current(field(body, "index"))}

    def list_images(request: Request, body: Any) -> dict[str, Any]:
        items = [{"index": i, "key": r.key, "width": r.width, "height": r.height, "status": project.image_status(i),
                  "objects": len(r.objects), "error": project.errors.get(i)} for i, r in enumerate(project.records)]
        return {"images": items, "done": project.done_count(), "total": len(items)}

    def get_image(request: Request, body: Any) -> dict[str, Any]:
        i = image_index(request)
        try:  # decode first, outside the lock: a 10000 x 10000 image does not hold up clicks elsewhere
            project.cache.get(project.records[i].path)
        except PPSegError:
            pass  # project.open below says what is wrong, with the status the page expects
        with lock:
            st = project.open(i)
            img = st.image
            _, pyramid = project.cache.get(st.record.path)
            return {"index": i, "key": st.record.key, "width": img.width, "height": img.height, "kind": img.kind,
                    "tile_size": pyramid.tile_size, "levels": pyramid.levels,
                    "window": img.window_json(project.window_of(i, img)), "state": project.state_dict(st)}

    def tile(request: Request, body: Any) -> Response:
        from .imaging import Window

        i = image_index(request)
        try:
            level, tx, ty = (int(request.path_params[k]) for k in ("level", "tx", "ty"))
        except ValueError:
            raise NotFound("tile: level, tx and ty must be integers") from None
        rec = project.records[i]
        try:
            img, pyramid = project.cache.get(rec.path)  # not under the lock: a tile never waits for a click
        except PPSegError as e:
            raise AnnotateError(str(e)) from None
        win = None
        if img.windowed:
            win = Window.from_query(request.query_params.get("ww"), request.query_params.get("wl")) \
                or project.window_of(i, img)
        try:
            data, media = pyramid.tile(level, tx, ty, win)
        except PPSegError as e:
            raise NotFound(str(e)) from None
        return Response(data, media_type=media, headers={"Cache-Control": "no-cache"})

    def put_window(request: Request, body: Any) -> dict[str, Any]:
        i = image_index(request)
        return {"window": project.set_window(i, field(body, "width"), field(body, "level"))}

    # ------------------------------------------------------------------ clicks and objects
    def click(request: Request, body: Any) -> dict[str, Any]:
        i = image_index(request)
        positive = field(body, "positive", True)
        if not isinstance(positive, bool):
            raise AnnotateError(f"positive: expected true or false, got {positive!r}")
        t0 = time.perf_counter()
        st = project.click(i, field(body, "x"), field(body, "y"), positive, field(body, "view", None))
        out = {"current": project.current_of(st), "can_undo": st.can_undo, "can_redo": st.can_redo,
               "infer_ms": round(st.session.last_infer_s * 1000, 1)}
        out["server_ms"] = round((time.perf_counter() - t0) * 1000, 1)  # the click loop + encoding the mask
        return out

    def finish(request: Request, body: Any) -> dict[str, Any]:
        return state(project.finish(image_index(request), field(body, "label")))

    def cancel(request: Request, body: Any) -> dict[str, Any]:
        return state(project.cancel(image_index(request)))

    def undo(request: Request, body: Any) -> dict[str, Any]:
        return state(project.undo(image_index(request)))

    def redo(request: Request, body: Any) -> dict[str, Any]:
        return state(project.redo(image_index(request)))

    def patch_object(request: Request, body: Any) -> dict[str, Any]:
        return state(project.relabel(image_index(request), object_id(request), field(body, "label")))

    def delete_object(request: Request, body: Any) -> dict[str, Any]:
        return state(project.delete(image_index(request), object_id(request)))

    def order_object(request: Request, body: Any) -> dict[str, Any]:
        return state(project.reorder(image_index(request), object_id(request), field(body, "to")))

    def get_polygon(request: Request, body: Any) -> dict[str, Any]:
        return {"polygons": project.polygons(image_index(request), object_id(request))}

    def put_polygon(request: Request, body: Any) -> dict[str, Any]:
        return state(project.set_polygons(image_index(request), object_id(request), field(body, "polygons")))

    def refine(request: Request, body: Any) -> dict[str, Any]:
        return state(project.refine(image_index(request), object_id(request)))

    def brush(request: Request, body: Any) -> dict[str, Any]:
        return state(project.brush(image_index(request), object_id(request), field(body, "strokes")))

    def put_status(request: Request, body: Any) -> dict[str, Any]:
        return {"status": project.set_status(image_index(request), field(body, "status"))}

    # ------------------------------------------------------------------ labels, settings, model
    def labels_out() -> dict[str, Any]:
        return {"labels": [lab.to_dict() for lab in project.labels]}

    def get_labels(request: Request, body: Any) -> dict[str, Any]:
        return labels_out()

    def put_labels(request: Request, body: Any) -> dict[str, Any]:
        project.set_labels(field(body, "labels"))
        return labels_out()

    def import_labels(request: Request, body: Any) -> dict[str, Any]:
        project.import_labels(body if isinstance(body, str) else "")
        return labels_out()

    def export_labels(request: Request, body: Any) -> Response:
        from .records import format_labels_txt

        return PlainTextResponse(format_labels_txt(project.labels),
                                 headers={"Content-Disposition": 'attachment; filename="labels.txt"'})

    def put_settings(request: Request, body: Any) -> dict[str, Any]:
        return {"settings": project.set_settings(body).to_dict()}

    def put_model(request: Request, body: Any) -> dict[str, Any]:
        name = field(body, "name")
        if not isinstance(name, str) or name not in {m["name"] for m in models}:
            known = ", ".join(m["name"] for m in models)
            raise AnnotateError(f"model {name!r} is not offered here (models: {known})")
        if name not in loaded:
            if load_model is None:
                raise AnnotateError("this server cannot load other models")
            loaded[name] = load_model(name)
        project.predictor, project.model = loaded[name], name
        for st in project.states.values():  # a click session belongs to the model that made it
            if st.session is not None:
                st.session, st.crop, st.editing = None, None, None
                st.push()
        project.save_project()
        return {"model": name}

    # ------------------------------------------------------------------ export
    def export(request: Request, body: Any) -> dict[str, Any]:
        fmt = field(body, "format")
        if fmt not in FORMATS:
            raise AnnotateError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        result = run_export(project, fmt)
        return {"format": fmt, "path": str(result.path), "files": result.files, "warnings": result.warnings}

    # ------------------------------------------------------------------ video propagation
    def propagate(request: Request, body: Any) -> dict[str, Any]:
        if project.kind != "video" and len(project.records) < 2:
            raise AnnotateError("propagation needs a video or a folder of frames")
        start = project.index(field(body, "from"))
        direction = field(body, "direction", "forward")
        if direction not in ("forward", "backward", "both"):
            raise AnnotateError(f"direction {direction!r}: expected forward, backward or both")
        end = field(body, "to", None)
        if end is not None:
            end = project.index(end)
        if any(j["state"] == "running" for j in jobs.values()):
            raise AnnotateError("a propagation is already running; wait for it to finish")
        if not project.records[start].objects:
            raise AnnotateError(f"frame {start} has no objects to propagate; annotate it first")
        project.writable(start)
        job_id = uuid.uuid4().hex[:12]
        job: dict[str, Any] = {"job": job_id, "state": "running", "done": 0, "total": 0, "frames": [], "error": None}
        jobs[job_id] = job
        threading.Thread(target=run_propagation, args=(project, job, start, direction, end), daemon=True).start()
        return {"job": job_id}

    def get_job(request: Request, body: Any) -> dict[str, Any]:
        job = jobs.get(request.path_params["job"])
        if job is None:
            raise NotFound(f"job {request.path_params['job']!r} does not exist")
        return dict(job)

    api = [
        ("/api/project", get_project, ["GET"]),
        ("/api/project/current", put_current, ["PUT"]),
        ("/api/images", list_images, ["GET"]),
        ("/api/images/{i}", get_image, ["GET"]),
        ("/api/images/{i}/tile/{level}/{tx}/{ty}", tile, ["GET"]),
        ("/api/images/{i}/window", put_window, ["PUT"]),
        ("/api/images/{i}/click", click, ["POST"]),
        ("/api/images/{i}/finish", finish, ["POST"]),
        ("/api/images/{i}/cancel", cancel, ["POST"]),
        ("/api/images/{i}/undo", undo, ["POST"]),
        ("/api/images/{i}/redo", redo, ["POST"]),
        ("/api/images/{i}/status", put_status, ["PUT"]),
        ("/api/images/{i}/objects/{oid}", patch_object, ["PATCH"]),
        ("/api/images/{i}/objects/{oid}", delete_object, ["DELETE"]),
        ("/api/images/{i}/objects/{oid}/order", order_object, ["POST"]),
        ("/api/images/{i}/objects/{oid}/polygon", get_polygon, ["GET"]),
        ("/api/images/{i}/objects/{oid}/polygon", put_polygon, ["PUT"]),
        ("/api/images/{i}/objects/{oid}/brush", brush, ["POST"]),
        ("/api/images/{i}/objects/{oid}/refine", refine, ["POST"]),
        ("/api/labels", get_labels, ["GET"]),
        ("/api/labels", put_labels, ["PUT"]),
        ("/api/labels/import", import_labels, ["POST"]),
        ("/api/labels/export", export_labels, ["GET"]),
        ("/api/settings", put_settings, ["PUT"]),
        ("/api/model", put_model, ["PUT"]),
        ("/api/export", export, ["POST"]),
        ("/api/propagate", propagate, ["POST"]),
        ("/api/jobs/{job}", get_job, ["GET"]),
    ]
    # one Route per path with the methods merged (Starlette matches the first route by path)
    by_path: dict[str, dict[str, Callable]] = {}
    for path, fn, methods in api:
        for m in methods:
            by_path.setdefault(path, {})[m] = endpoint(fn, locked=fn not in (tile, get_image))

    def dispatch(table: dict[str, Callable]) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            h = table.get(request.method)
            if h is None:
                return JSONResponse({"error": f"{request.method} is not allowed on {request.url.path}"},
                                    status_code=405)
            return await h(request)

        return route

    routes = [Route("/", index, methods=["GET"]), Route("/static/{name}", static, methods=["GET"])]
    routes += [Route(path, dispatch(t), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]) for path, t in by_path.items()]

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        return JSONResponse({"error": f"{request.url.path}: {getattr(exc, 'detail', 'not found')}"}, status_code=code)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    hosts = set(_LOOPBACK) if host in _LOOPBACK or host.startswith("127.") else set()
    if hosts:
        hosts.add(host.lower())
    return _Guard(app, token, hosts)


def run_export(project: Project, fmt: str) -> Any:
    """Export ``project`` as ``fmt`` into ``OUT/exports/<fmt>`` (the page's menu and ``--export``)."""
    from .exports import export_annotations

    index_of = {id(r): i for i, r in enumerate(project.records)}

    def read_rgb(rec: Any) -> Any:
        img, _ = project.cache.get(rec.path)
        return img.rgb(project.window_of(index_of[id(rec)], img))

    records = [r for i, r in enumerate(project.records) if i not in project.errors]
    return export_annotations(fmt, records, project.labels, project.out / "exports" / fmt, read_rgb)


def run_propagation(project: Project, job: dict[str, Any], start: int, direction: str, end: int | None) -> None:
    """A propagation job (a thread): from frame ``start`` forward/backward/both, stopping before a
    frame the user annotated by hand; each frame written is saved at once."""
    from .video import Propagator

    try:
        n = len(project.records)
        spans = []
        if direction in ("forward", "both"):
            spans.append(n - 1 if end is None or end <= start else end)
        if direction in ("backward", "both"):
            spans.append(0 if end is None or end >= start else end)
        spans = [e for e in spans if e != start]
        job["total"] = sum(abs(e - start) for e in spans)
        with project.lock:
            seed = list(project.records[start].objects)
            predictor = project.predictor
        prop = Propagator(predictor)

        def read_frame(i: int) -> Any:
            img, _ = project.cache.get(project.records[i].path)
            return img.rgb()

        def manual(i: int) -> bool:
            return any(o.source == "manual" for o in project.records[i].objects)

        def on_frame(i: int, objects: list) -> None:
            with project.lock:
                rec = project.records[i]
                if i in project.errors:
                    return
                if not rec.width:
                    project.open(i)
                rec.objects = [o for o in rec.objects if o.source == "manual"] + [
                    type(o)(k + 1 + max((m.id for m in rec.objects if m.source == "manual"), default=0), o.label,
                            o.bbox, o.counts, "propagated", o.track) for k, o in enumerate(objects)]
                st = project.states.get(i)
                if st is not None:
                    st.push()
                project.save_record(i)
            job["done"] += 1
            job["frames"].append(i)

        for e in spans:
            prop.run(read_frame, start, e, seed, stop=manual, on_frame=on_frame)
        job["state"] = "done"
    except Exception as e:  # noqa: BLE001 - reported on the page; the server goes on
        log.exception("propagation failed")
        job["state"], job["error"] = "failed", str(e) or type(e).__name__
