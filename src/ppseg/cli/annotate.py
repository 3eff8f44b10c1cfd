"""Annotate images or a video in the browser with a click model (EISeg, rebuilt for the browser).

INPUT is a folder of images (subfolders too), a folder of video frames, or a video file. The
server prints its URL and opens it; left click adds a positive click, right click a negative one,
Space finishes the object; `?` on the page lists every shortcut. Each finished object is saved at
once under --out (default INPUT/annotations, or <video>_annotations beside a video): stopping the
server, even with kill -9, loses at most the object being clicked, and starting it again resumes
where you were.

Models (--model, repeatable; the first is used at start, the page switches between them): a
ppseg weights file, an exported click .onnx, or zoo:NAME (default: the shipped click model,
run with ONNX Runtime). `pip install "ppseg[annotate]"` is enough; torch is not needed.

Exports (the page's menu, or --export FORMAT without starting the server), into OUT/exports/FORMAT:
  paddleseg    images + grayscale label PNGs + train.txt/val.txt + labels.txt (ppseg train reads it)
  pseudocolor  palette PNGs in the labels' colours
  coco         COCO instances JSON (polygons; RLE where a polygon would lose holes)
  labelme      LabelMe JSON per image
  yolo         YOLO-seg label files + data.yaml
  rgba         one RGBA cutout per object

Security: binds 127.0.0.1 by default. With another --host (e.g. 0.0.0.0 to annotate from another
machine) a random token is printed, and only the URL carrying it works. The server reads only
INPUT and writes only --out.

Examples:
    ppseg annotate photos/
    ppseg annotate clip.mp4 --labels labels.txt
    ppseg annotate photos/ --export coco
    ppseg annotate scans/ --model zoo:click_mnv3_lite --model my_click_model.onnx --port 8800
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import threading

HELP = "annotate images or a video in the browser with a click model (EISeg rebuilt)"
DEFAULT_PORT = 8765


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="a folder of images or frames, or a video file")
    p.add_argument("--model", action="append", default=None, metavar="M",
                   help="click model: weights file, exported .onnx or zoo:NAME; repeat to offer several "
                        "(default: the shipped zoo:click_mnv3_lite)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="labels.txt to start with ('id name r g b' lines, or one class name per line)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where annotations are saved (default INPUT/annotations, or <video>_annotations)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs the printed token)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    p.add_argument("--export", default=None, metavar="FORMAT",
                   help="write an export (paddleseg, pseudocolor, coco, labelme, yolo, rgba) and exit")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: ONNX Runtime's)")


def _check_port(host: str, port: int) -> socket.socket:
    """Bind the port now, so a second server on it is a clear line, not a traceback later."""
    from ..errors import PPSegError

    if not 0 <= port <= 65535:
        raise PPSegError(f"--port {port}: expected 0..65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets that say they are TCP;
    # with it on, each answer's body waits ~40 ms for the browser's delayed ACK of its headers
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if sys.platform != "win32":  # a restart right after a stop: old connections in TIME_WAIT do not block it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise PPSegError(f"--port {port}: already in use on {host} (another ppseg annotate?); "
                             "pass another --port, or --port 0 for a free one") from None
        raise PPSegError(f"--host {host} --port {port}: cannot bind ({e.strerror or e})") from None
    return sock


def _model_list(specs: list[str]) -> list[dict[str, str]]:
    from ..zoo import zoo_entries

    zoo = {f"zoo:{e.name}": e.summary for e in zoo_entries() if e.task == "interactive"}
    out = [{"name": s, "summary": zoo.get(s, "given with --model")} for s in specs]
    out += [{"name": name, "summary": summary} for name, summary in zoo.items() if name not in specs]
    return out


def run(args: argparse.Namespace) -> int:
    from ..apps.annotate.records import read_labels_file
    from ..errors import PPSegError

    if args.threads is not None and not 1 <= args.threads <= 256:
        raise PPSegError(f"--threads {args.threads}: expected 1..256")
    labels = read_labels_file(args.labels) if args.labels else None
    sock = None
    if args.export is not None:
        from ..apps.annotate.exports import FORMATS

        if args.export not in FORMATS:
            raise PPSegError(f"--export {args.export!r}: expected one of {', '.join(FORMATS)}")
    else:
        from ..apps.annotate.exports import FORMATS  # noqa: F401 - fail early when an extra is missing

        sock = _check_port(args.host, args.port)
    try:
        return _run(args, labels, sock)
    except BaseException:
        if sock is not None:
            sock.close()
        raise


def _run(args: argparse.Namespace, labels, sock: socket.socket | None) -> int:  # type: ignore[no-untyped-def]
    from ..apps.annotate.project import Project
    from ..errors import PPSegError
    from ..interactive import DEFAULT_MODEL, load_click_predictor

    project = Project(args.input, args.out, labels)
    if args.export is not None:
        from ..apps.annotate.server import run_export

        if not any(r.objects or r.status for r in project.records):
            project.discard()
            raise PPSegError(f"{project.out}: nothing annotated here yet; annotate first, or give --out where "
                             "the annotations are")
        result = run_export(project, args.export)
        for w in result.warnings:
            print(f"warning: {w}")
        print(f"{result.path}: {args.export} export, {result.files} files")
        return 0

    try:
        import uvicorn  # noqa: F401
        import starlette  # noqa: F401
    except ImportError:
        raise PPSegError('ppseg annotate needs its server packages: pip install "ppseg[annotate]"') from None
    specs = list(args.model or [])
    if project.model and project.model not in specs and not args.model:
        specs.append(project.model)  # the model this project was annotated with last time
    if not specs:
        specs = [DEFAULT_MODEL]

    def load(name: str):  # type: ignore[no-untyped-def]
        return load_click_predictor(name, threads=args.threads, prefer_onnx=True)

    try:
        project.predictor = load(specs[0])  # a model that is not a click model: one line naming it
    except BaseException:
        project.discard()  # nothing was saved yet: leave no folder behind
        raise
    project.model = specs[0]
    project.save_project()

    from ..apps.annotate.server import create_app

    token = None
    loopback = args.host in ("127.0.0.1", "localhost", "::1") or args.host.startswith("127.")
    if not loopback:
        token = secrets.token_urlsafe(24)
    app = create_app(project, token=token, host=args.host, models=_model_list(specs), load_model=load)
    port = sock.getsockname()[1]
    shown = args.host if args.host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/" + (f"?token={token}" if token else "")
    done, total = project.done_count(), len(project.records)
    print(f"ppseg annotate: {total} {'frames' if project.kind == 'video' else 'images'} ({done} done) from "
          f"{project.input}; saving to {project.out}; model {project.model}")
    if token:
        print(f"token: {token} (needed because --host {args.host} is reachable from other machines)")
    print(f"open {url}   (Ctrl+C stops; your work is saved as you go)", flush=True)
    if not args.no_browser:
        import webbrowser

        threading.Timer(0.8, lambda: webbrowser.open(url)).start()
    return _serve(app, sock)


def _serve(app, sock: socket.socket) -> int:  # type: ignore[no-untyped-def]
    import uvicorn

    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("ppseg annotate: stopped; everything finished is saved", file=sys.stderr)
    return 0
