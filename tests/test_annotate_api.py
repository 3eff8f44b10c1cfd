"""ppseg annotate's server: every endpoint, saving and resuming, undo/redo, path and size checks.

Most tests drive the Starlette app in-process (starlette's TestClient) with a tiny deterministic
click model (a disk around the positive clicks), so they test the server, not a network; the
subprocess tests run the real command with the shipped ONNX model, kill it with SIGKILL, and
check nothing finished was lost, and that the whole path runs without torch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette 1.x would rather have httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from ppseg.apps.annotate.project import CROP_SIDE, Project  # noqa: E402
from ppseg.apps.annotate.records import Label, decode_mask  # noqa: E402
from ppseg.apps.annotate.server import create_app  # noqa: E402
from ppseg.interactive.session import ClickPredictor, InteractiveSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class DiskBackend:
    """A click 'model': a disk of radius 12 around each positive click, minus negative ones."""

    prev_input = "mask"
    radius = 5.0

    def infer(self, image: np.ndarray, coord: np.ndarray):
        pos = cv2.dilate((coord[1] > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8))
        neg = cv2.dilate((coord[2] > 0.5).astype(np.uint8), np.ones((9, 9), np.uint8))
        prev = coord[0] > 0.5
        m = ((pos > 0) | prev) & (neg == 0)
        return np.where(m, 8.0, -8.0).astype(np.float32), None


def disk_predictor() -> ClickPredictor:
    return ClickPredictor(DiskBackend(), InteractiveSettings(zoom_in=False), "disk")


def make_images(folder: Path, n: int = 3, size: tuple[int, int] = (64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        p = folder / f"img{k}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        paths.append(p)
    return paths


def client_for(folder: Path, out: Path | None = None, **kw) -> tuple[TestClient, Project]:
    project = Project(folder, out, progress=False)
    project.predictor, project.model = disk_predictor(), "disk"
    app = create_app(project, models=[{"name": "disk", "summary": "test"}], **kw)
    return TestClient(app, base_url="http://127.0.0.1"), project


@pytest.fixture
def api(tmp_path):
    make_images(tmp_path / "imgs")
    c, p = client_for(tmp_path / "imgs")
    return c, p, tmp_path


def click(c, i=0, x=20, y=20, positive=True, **kw):
    r = c.post(f"/api/images/{i}/click", json={"x": x, "y": y, "positive": positive, **kw})
    assert r.status_code == 200, r.text
    return r.json()


def saved(project: Project, key: str) -> dict:
    return json.loads((project.out / "objects" / f"{key}.json").read_text())


# --------------------------------------------------------------------------- project and listing
def test_project_lists_images_and_skips_out_hidden_and_outside_links(tmp_path):
    make_images(tmp_path / "in", 2)
    make_images(tmp_path / "in" / "sub", 1)
    make_images(tmp_path / "in" / ".hidden", 1)
    make_images(tmp_path / "elsewhere", 1)
    os.symlink(tmp_path / "elsewhere" / "img0.png", tmp_path / "in" / "link_out.png")
    os.symlink(tmp_path / "in" / "img0.png", tmp_path / "in" / "link_in.png")
    (tmp_path / "in" / "notes.txt").write_text("x")
    p = Project(tmp_path / "in", progress=False)
    keys = [r.key for r in p.records]
    assert keys == ["img0.png", "img1.png", "link_in.png", "sub/img0.png"]
    assert p.out == (tmp_path / "in" / "annotations").resolve()
    make_images(p.out / "exports" / "paddleseg" / "images", 1)  # exports inside OUT are not listed
    assert [r.key for r in Project(tmp_path / "in", progress=False).records] == keys


@pytest.mark.parametrize("setup, expect", [
    (lambda d: d.mkdir(), "no images here"),
    (lambda d: None, "no such file or folder"),
    (lambda d: d.write_text("x"), "not a folder or a video"),
])
def test_project_bad_input_is_one_line(tmp_path, setup, expect):
    from ppseg.errors import PPSegError

    target = tmp_path / "input"
    setup(target)
    with pytest.raises(PPSegError, match=expect):
        Project(target, progress=False)


# --------------------------------------------------------------------------- clicking and objects
def test_click_finish_saves_at_once_and_undo_redo_walk_one_history(api):
    c, p, _ = api
    info = c.get("/api/images/0").json()
    assert (info["width"], info["height"]) == (64, 48) and info["state"]["objects"] == []
    out = click(c, x=20, y=20)
    m = decode_mask(out["current"]["mask"], 48, 64)
    assert m[20, 20] and 400 < m.sum() < 700  # the click disk grown by 15x15
    out = click(c, x=26, y=20, positive=False)
    m2 = decode_mask(out["current"]["mask"], 48, 64)
    assert not m2[20, 26] and m2.sum() < m.sum()
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    assert st["current"] is None and len(st["objects"]) == 1 and st["saved"]
    obj = saved(p, "img0.png")["objects"]
    assert len(obj) == 1 and obj[0]["label"] == 1
    assert (decode_mask(obj[0], 48, 64) == m2).all()
    # one history: undo the finish (object gone on disk too, clicks back), then the negative click
    st = c.post("/api/images/0/undo").json()["state"]
    assert st["objects"] == [] and saved(p, "img0.png")["objects"] == []
    assert len(st["current"]["clicks"]) == 2
    st = c.post("/api/images/0/undo").json()["state"]
    assert len(st["current"]["clicks"]) == 1 and decode_mask(st["current"]["mask"], 48, 64)[20, 26]
    st = c.post("/api/images/0/redo").json()["state"]
    st = c.post("/api/images/0/redo").json()["state"]
    assert len(st["objects"]) == 1 and st["current"] is None and not st["can_redo"]
    assert len(saved(p, "img0.png")["objects"]) == 1


def test_object_operations(api):
    c, p, _ = api
    c.put("/api/labels", json={"labels": [{"id": 1, "name": "car", "color": [255, 0, 0]},
                                          {"id": 2, "name": "person", "color": [0, 255, 0]}]})
    click(c, x=15, y=15)
    c.post("/api/images/0/finish", json={"label": 1})
    click(c, x=40, y=30)
    st = c.post("/api/images/0/finish", json={"label": 2}).json()["state"]
    a, b = (o["id"] for o in st["objects"])
    st = c.patch(f"/api/images/0/objects/{a}", json={"label": 2}).json()["state"]
    assert st["objects"][0]["label"] == 2
    st = c.post(f"/api/images/0/objects/{a}/order", json={"to": 1}).json()["state"]
    assert [o["id"] for o in st["objects"]] == [b, a]
    polys = c.get(f"/api/images/0/objects/{a}/polygon").json()["polygons"]
    assert polys and len(polys[0]) >= 4
    square = [[[5, 5], [30, 5], [30, 25], [5, 25]]]
    st = c.put(f"/api/images/0/objects/{a}/polygon", json={"polygons": square}).json()["state"]
    obj = next(o for o in st["objects"] if o["id"] == a)
    m = decode_mask(obj, 48, 64)
    assert m[10, 10] and m[24, 29] and not m[30, 40] and abs(int(m.sum()) - 26 * 21) < 60
    st = c.post(f"/api/images/0/objects/{a}/brush",
                json={"strokes": [{"points": [[40, 40], [55, 40]], "radius": 2, "erase": False}]}).json()["state"]
    m = decode_mask(next(o for o in st["objects"] if o["id"] == a), 48, 64)
    assert m[40, 48] and m[10, 10]
    st = c.post(f"/api/images/0/objects/{a}/brush",
                json={"strokes": [{"points": [[10, 10]], "radius": 3, "erase": True}]}).json()["state"]
    m = decode_mask(next(o for o in st["objects"] if o["id"] == a), 48, 64)
    assert not m[10, 10] and m[20, 20]
    st = c.delete(f"/api/images/0/objects/{b}").json()["state"]
    assert [o["id"] for o in st["objects"]] == [a]
    assert [o["id"] for o in saved(p, "img0.png")["objects"]] == [a]
    # every one of those is one undo step
    for _ in range(5):
        st = c.post("/api/images/0/undo").json()["state"]
    assert [o["id"] for o in st["objects"]] == [a, b] and st["objects"][0]["label"] == 2


def test_status_labels_settings_and_resume(api):
    c, p, tmp = api
    assert c.put("/api/images/1/status", json={"status": "empty"}).json() == {"status": "empty"}
    listing = c.get("/api/images").json()
    assert listing["done"] == 1 and listing["total"] == 3 and listing["images"][1]["status"] == "empty"
    r = c.post("/api/labels/import", content="_background_\ntree\nsky\n".encode())
    assert [lab["name"] for lab in r.json()["labels"]] == ["tree", "sky"]
    assert c.get("/api/labels/export").text == "1 tree 128 0 0\n2 sky 0 128 0\n"
    click(c, x=20, y=20)
    c.post("/api/images/0/finish", json={"label": 2})
    r = c.put("/api/labels", json={"labels": [{"id": 1, "name": "tree", "color": [1, 2, 3]}]})
    assert r.status_code == 409 and "'sky' is used by 1 object" in r.json()["error"]
    assert c.put("/api/settings", json={"keep_largest": True}).json()["settings"]["keep_largest"]
    assert c.put("/api/project/current", json={"index": 2}).json() == {"current": 2}
    # a new server on the same OUT resumes: objects, labels, settings, where the user was
    c2, p2 = client_for(tmp / "imgs")
    proj = c2.get("/api/project").json()
    assert proj["current"] == 2 and proj["settings"]["keep_largest"] and proj["done"] == 1
    assert [lab["name"] for lab in proj["labels"]] == ["tree", "sky"]
    assert len(c2.get("/api/images/0").json()["state"]["objects"]) == 1


def test_keep_largest_component(api):
    c, p, _ = api
    click(c, x=10, y=10)
    out = click(c, x=50, y=35)
    assert decode_mask(out["current"]["mask"], 48, 64).sum() > 900  # two disks
    c.put("/api/settings", json={"keep_largest": True})
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    m = decode_mask(st["objects"][0], 48, 64)
    assert m.sum() < 700 and (m[10, 10] != m[35, 50])


def test_large_images_click_in_a_crop(tmp_path):
    (tmp_path / "big").mkdir()
    cv2.imwrite(str(tmp_path / "big" / "wide.png"), np.full((300, 5000, 3), 90, np.uint8))
    c, p = client_for(tmp_path / "big")
    info = c.get("/api/images/0").json()
    assert info["levels"] >= 2
    out = click(c, x=4000, y=150, view=[3800, 0, 4300, 300])
    x0, y0, x1, y1 = out["current"]["window"]
    assert x0 <= 4000 < x1 and x1 - x0 <= CROP_SIDE and (x1 - x0) < 5000
    m = out["current"]["mask"]
    assert m["bbox"][0] > 3900 and decode_mask(m, 300, 5000)[150, 4000]
    r = c.post("/api/images/0/click", json={"x": 100, "y": 150, "positive": True})
    assert r.status_code == 409 and "outside the window" in r.json()["error"]
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    assert st["objects"][0]["bbox"][0] > 3900
    t = c.get("/api/images/0/tile/0/7/0")
    assert t.status_code == 200 and t.headers["content-type"].startswith("image/")


# --------------------------------------------------------------------------- bad requests
@pytest.mark.parametrize("method, path, body, status, words", [
    ("get", "/api/images/99", None, 404, "does not exist"),
    ("get", "/api/images/-1", None, 404, "does not exist"),
    ("get", "/api/images/abc", None, 404, "does not exist"),
    ("post", "/api/images/0/click", {"x": 1e9, "y": 1}, 400, "outside the image"),
    ("post", "/api/images/0/click", {"x": "a", "y": 1}, 400, "click x"),
    ("post", "/api/images/0/click", {"y": 1}, 400, "missing field 'x'"),
    ("post", "/api/images/0/click", {"x": 1, "y": 1, "positive": "yes"}, 400, "positive"),
    ("post", "/api/images/0/click", {"x": 1, "y": 1, "view": [1, 2]}, 400, "view"),
    ("post", "/api/images/0/finish", {"label": 1}, 409, "nothing to finish"),
    ("post", "/api/images/0/finish", {"label": 77}, 400, "label 77 does not exist"),
    ("patch", "/api/images/0/objects/5", {"label": 1}, 404, "object 5 does not exist"),
    ("put", "/api/images/0/status", {"status": "great"}, 400, "status 'great'"),
    ("put", "/api/images/0/window", {"width": 10, "level": 5}, 400, "16-bit and DICOM"),
    ("put", "/api/labels", {"labels": [{"id": 0, "name": "x"}]}, 400, "labels[0]: id 0"),
    ("put", "/api/labels", {"labels": [{"id": 1, "name": "a b"}]}, 400, "without spaces"),
    ("put", "/api/labels", {"labels": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]}, 400, "used twice"),
    ("post", "/api/labels/import", "1 car 300 0 0", 400, "labels.txt:1"),
    ("put", "/api/settings", {"threshold": 2}, 400, "threshold"),
    ("put", "/api/settings", {"nope": 1}, 400, "unknown setting 'nope'"),
    ("put", "/api/model", {"name": "/etc/passwd"}, 400, "not offered"),
    ("post", "/api/export", {"format": "../../x"}, 400, "format"),
    ("put", "/api/project/current", {"index": 7}, 404, "image 7"),
    ("post", "/api/propagate", {"from": 0}, 400, "no objects to propagate"),
    ("get", "/api/jobs/zzz", None, 404, "job 'zzz'"),
    ("delete", "/api/labels", None, 405, "not allowed"),
    ("get", "/api/nothing", None, 404, ""),
])
def test_bad_requests_get_one_line_and_the_server_goes_on(api, method, path, body, status, words):
    c, _, _ = api
    kw = {}
    if isinstance(body, str):
        kw["content"] = body.encode()
    elif body is not None:
        kw["json"] = body
    r = getattr(c, method)(path, **kw) if kw else getattr(c, method)(path)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert c.get("/api/project").status_code == 200


def test_malformed_json_and_oversized_bodies(api):
    c, _, _ = api
    r = c.post("/api/images/0/click", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = c.post("/api/images/0/click", content=b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    r = c.post("/api/labels/import", content=b"x" * (2 << 20))
    assert r.status_code == 413
    r = c.put("/api/images/0/objects/1/polygon", content=b" " * (9 << 20))
    assert r.status_code == 413
    def chunks(n, size=1 << 20):  # no Content-Length: the body arrives chunked and is bounded as it is read
        for _ in range(n):
            yield b" " * size

    r = c.post("/api/images/0/click", content=chunks(12))
    assert r.status_code == 413 and "over 8 MiB" in r.json()["error"]
    r = c.post("/api/labels/import", content=chunks(3))
    assert r.status_code == 413 and "over 1 MiB" in r.json()["error"]
    r = c.post("/api/labels/import", content=b"\xff\xfe bad")
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert c.get("/api/images").status_code == 200


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/project.py", "/static/%2e%2e%2fAPI.md",
    "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/..%5c..%5cserver.py", "/../../etc/passwd",
    "/api/images/0/../../../etc/passwd", "/static/index.html/..", "/static/.", "/static/",
])
def test_no_path_reaches_outside_the_static_files(api, path):
    c, _, _ = api
    r = c.get(path)
    assert r.status_code in (404, 400, 405), (path, r.status_code)
    assert b"root:" not in r.content and b"import" not in r.content


def test_static_files_and_page_are_served(api):
    c, _, _ = api
    r = c.get("/")
    assert r.status_code == 200 and b"<html" in r.content.lower()
    names = [p.name for p in (ROOT / "src/ppseg/apps/annotate/static").iterdir() if p.suffix == ".js"]
    assert names
    for name in names:
        r = c.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")


def test_loopback_server_refuses_foreign_host_headers(api):
    c, _, _ = api
    r = c.get("/api/project", headers={"host": "evil.example:8765"})
    assert r.status_code == 421
    assert c.get("/api/project", headers={"host": "localhost:8765"}).status_code == 200


def test_token_required_off_loopback(tmp_path):
    make_images(tmp_path / "imgs", 1)
    c, _ = client_for(tmp_path / "imgs", token="s3cret", host="0.0.0.0")
    assert c.get("/api/project").status_code == 401
    assert c.get("/").status_code == 401
    assert c.get("/api/project", headers={"x-ppseg-token": "wrong"}).status_code == 401
    assert c.get("/api/project", headers={"x-ppseg-token": "s3cret"}).status_code == 200
    r = c.get("/?token=s3cret")
    assert r.status_code == 200 and "ppseg_token=s3cret" in r.headers.get("set-cookie", "")
    assert c.get("/api/project").status_code == 200  # the cookie from the page


def test_unreadable_saved_objects_are_never_overwritten(tmp_path):
    make_images(tmp_path / "imgs", 2)
    out = tmp_path / "imgs" / "annotations" / "objects"
    out.mkdir(parents=True)
    (out / "img0.png.json").write_text("{broken")
    c, p = client_for(tmp_path / "imgs")
    assert c.get("/api/images").json()["images"][0]["status"] == "error"
    r = c.post("/api/images/0/click", json={"x": 5, "y": 5})
    assert r.status_code == 409 and "img0.png.json" in r.json()["error"]
    assert (out / "img0.png.json").read_text() == "{broken"
    click(c, i=1)
    assert c.post("/api/images/1/finish", json={"label": 1}).status_code == 200


def test_failed_save_is_reported_and_retried(api, monkeypatch):
    c, p, _ = api
    import ppseg.apps.annotate.project as project_mod

    real = project_mod.atomic_open

    def broken(path, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project_mod, "atomic_open", broken)
    click(c)
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    assert not st["saved"] and "No space left" in st["save_error"] and len(st["objects"]) == 1
    monkeypatch.setattr(project_mod, "atomic_open", real)
    click(c, x=50, y=30)
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    assert st["saved"] and len(saved(p, "img0.png")["objects"]) == 2


def test_export_from_the_api(api):
    c, p, _ = api
    click(c, x=20, y=20)
    c.post("/api/images/0/finish", json={"label": 1})
    c.put("/api/images/0/status", json={"status": "done"})
    r = c.post("/api/export", json={"format": "paddleseg"})
    assert r.status_code == 200, r.text
    out = Path(r.json()["path"])
    assert out == p.out / "exports" / "paddleseg" and r.json()["files"] > 0
    label = cv2.imread(str(next((out / "labels").glob("img0*.png"))), cv2.IMREAD_UNCHANGED)
    assert label[20, 20] == 1 and label[0, 63] == 0


# --------------------------------------------------------------------------- the real command
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, port: int, *extra: str, no_torch: bool = True) -> subprocess.Popen:
    code = ("import sys; sys.modules['torch'] = None\n" if no_torch else "") + \
        "from ppseg.cli import main; sys.exit(main())"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, "annotate", str(folder), "--no-browser", "--port", str(port),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def _wait(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/project", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not answer")


def test_sigkill_loses_nothing_finished_and_runs_without_torch(tmp_path):
    import httpx

    folder = tmp_path / "photos"
    make_images(folder, 2, (160, 120))
    port = _free_port()
    proc = _start(folder, port)
    try:
        _wait(port, proc)
        base = f"http://127.0.0.1:{port}"
        proj = httpx.get(f"{base}/api/project").json()
        assert proj["model"] == "zoo:click_mnv3_lite"
        r = httpx.post(f"{base}/api/images/0/click", json={"x": 80, "y": 60, "positive": True}, timeout=30)
        assert r.status_code == 200, r.text
        assert httpx.post(f"{base}/api/images/0/finish", json={"label": 1}).status_code == 200
        httpx.put(f"{base}/api/project/current", json={"index": 1})
        httpx.post(f"{base}/api/images/1/click", json={"x": 10, "y": 10, "positive": True}, timeout=30)
        proc.send_signal(signal.SIGKILL)  # mid-object on image 1
        proc.wait(10)
        # a second server on a port in use: one clear line
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        busy = blocker.getsockname()[1]
        second = _start(folder, busy)
        out, _ = second.communicate(timeout=60)
        blocker.close()
        assert second.returncode == 1 and "already in use" in out and "Traceback" not in out
        proc = _start(folder, port)
        _wait(port, proc)
        proj = httpx.get(f"{base}/api/project").json()
        assert proj["current"] == 1
        st = httpx.get(f"{base}/api/images/0").json()["state"]
        assert len(st["objects"]) == 1 and st["objects"][0]["label"] == 1
        assert httpx.get(f"{base}/api/images/1").json()["state"]["objects"] == []
        assert not list((folder / "annotations").rglob("*.tmp"))
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("make, args, words", [
    (lambda d: (d / "empty").mkdir(), ["empty"], "no images here"),
    (lambda d: make_images(d / "p", 1), ["p", "--labels", "missing.txt"], "cannot read labels file"),
    (lambda d: (make_images(d / "p", 1), (d / "bad.txt").write_text("1 car\n2\n")), ["p", "--labels", "bad.txt"],
     "bad.txt:2"),
    (lambda d: make_images(d / "p", 1), ["p", "--model", "nope.onnx"], "click model not found"),
    (lambda d: make_images(d / "p", 1), ["p", "--model", "zoo:nope"], "unknown zoo model"),
    (lambda d: make_images(d / "p", 1), ["p", "--export", "tiff"], "--export 'tiff'"),
    (lambda d: (d / "v.mp4").write_bytes(b"not a video"), ["v.mp4"], "v.mp4"),
])
def test_cli_bad_input_is_one_line(tmp_path, make, args, words):
    make(tmp_path)
    r = subprocess.run([sys.executable, "-m", "ppseg", "annotate", *args, "--no-browser", "--port", "0"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


def test_cli_export_without_a_server(tmp_path):
    make_images(tmp_path / "p", 2)
    c, p = client_for(tmp_path / "p")
    click(c, x=20, y=20)
    c.post("/api/images/0/finish", json={"label": 1})
    r = subprocess.run([sys.executable, "-m", "ppseg", "annotate", "p", "--export", "coco"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads((p.out / "exports" / "coco" / "annotations.json").read_text())
    assert len(data["annotations"]) == 1 and data["categories"][0]["name"] == "object"


def test_labels_file_starts_the_project(tmp_path):
    make_images(tmp_path / "p", 1)
    (tmp_path / "labels.txt").write_text("1 road 128 64 128\n2 car 64 0 128\n")
    from ppseg.apps.annotate.records import read_labels_file

    p = Project(tmp_path / "p", labels=read_labels_file(tmp_path / "labels.txt"), progress=False)
    assert p.labels == [Label(1, "road", (128, 64, 128)), Label(2, "car", (64, 0, 128))]


def test_16bit_images_window_level_drives_tiles_and_clicks(tmp_path):
    (tmp_path / "scans").mkdir()
    img = np.zeros((60, 80), np.uint16)
    img[:, :40] = 1000
    img[:, 40:] = 3000
    cv2.imwrite(str(tmp_path / "scans" / "slice.png"), img)
    c, p = client_for(tmp_path / "scans")
    info = c.get("/api/images/0").json()
    assert info["kind"] == "gray16" and info["window"]["min"] == 1000 and info["window"]["max"] == 3000
    r = c.put("/api/images/0/window", json={"width": 100, "level": 1000})
    assert r.json()["window"] == {"width": 100.0, "level": 1000.0}
    tile = cv2.imdecode(np.frombuffer(c.get("/api/images/0/tile/0/0/0").content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.shape[:2] == (60, 80) and tile[0, 0].max() == 128 and tile[0, 79].max() == 255
    narrow = cv2.imdecode(np.frombuffer(c.get("/api/images/0/tile/0/0/0?ww=10&wl=5000").content, np.uint8),
                          cv2.IMREAD_UNCHANGED)
    assert narrow.max() == 0  # everything below the window: black
    assert c.get("/api/images/0/tile/0/0/0?ww=-1&wl=3").status_code == 400
    assert c.get("/api/images/0/tile/0/0/0?ww=5").status_code == 400
    assert c.get("/api/images/0/tile/9/0/0").status_code == 404
    # the window is saved with the image and survives a restart
    click(c, x=10, y=10)
    c.post("/api/images/0/finish", json={"label": 1})
    c2, _ = client_for(tmp_path / "scans")
    assert c2.get("/api/images/0").json()["window"]["width"] == 100.0


def _disc_clip(path: Path, n: int = 10, size: tuple[int, int] = (120, 90)) -> list[np.ndarray]:
    """A small video of a bright disc moving right over a textured background; returns the true masks."""
    w, h = size
    rng = np.random.default_rng(1)
    bg = cv2.GaussianBlur(rng.integers(0, 120, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    masks = []
    for k in range(n):
        frame = bg.copy()
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (30 + 4 * k, 45), 16, 1, -1)
        frame[m > 0] = (40, 200, 230)
        writer.write(frame)
        masks.append(m > 0)
    writer.release()
    return masks


def wait_job(c, job: str) -> dict:
    for _ in range(600):
        st = c.get(f"/api/jobs/{job}").json()
        if st["state"] != "running":
            return st
        time.sleep(0.05)
    raise AssertionError(f"job {job} still running: {st}")


def test_video_project_propagates_and_stops_at_hand_made_frames(tmp_path):
    import ppseg.apps.annotate.project as project_mod

    masks = _disc_clip(tmp_path / "clip.avi")
    project = Project(tmp_path / "clip.avi", progress=False)
    assert project.kind == "video" and len(project.records) == 10
    assert project.out == tmp_path / "clip_annotations" and (project.out / "frames" / "000009.jpg").is_file()
    project.predictor, project.model = disk_predictor(), "disk"
    c = TestClient(create_app(project), base_url="http://127.0.0.1")
    # a hand-made object on frame 0 (a polygon of the true disc) and on frame 7
    for frame in (0, 7):
        click(c, i=frame, x=30 + 4 * frame, y=45)
        st = c.post(f"/api/images/{frame}/finish", json={"label": 1}).json()["state"]
        poly = cv2.findContours(masks[frame].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0][0]
        c.put(f"/api/images/{frame}/objects/{st['objects'][0]['id']}/polygon",
              json={"polygons": [poly.reshape(-1, 2).tolist()]})
    assert c.post("/api/propagate", json={"from": 0, "direction": "sideways"}).status_code == 400
    job = c.post("/api/propagate", json={"from": 0, "direction": "forward"}).json()["job"]
    st = wait_job(c, job)
    assert st["state"] == "done", st
    assert sorted(st["frames"]) == list(range(1, 7))  # stops before frame 7, made by hand
    track = saved(project, "000000.jpg")["objects"][0]["track"]
    ious = []
    for k in range(1, 7):
        objs = saved(project, f"{k:06d}.jpg")["objects"]
        assert len(objs) == 1 and objs[0]["source"] == "propagated" and objs[0]["track"] == track
        m = decode_mask(objs[0], 90, 120)
        ious.append((m & masks[k]).sum() / (m | masks[k]).sum())
    assert np.mean(ious) > 0.7, ious
    assert saved(project, "000007.jpg")["objects"][0]["source"] == "manual"
    # propagating again from a corrected frame replaces the propagated objects, not the hand-made ones
    job = c.post("/api/propagate", json={"from": 7, "direction": "backward"}).json()["job"]
    wait_job(c, job)
    assert len(saved(project, "000003.jpg")["objects"]) == 1
    assert saved(project, "000000.jpg")["objects"][0]["source"] == "manual"
    assert project_mod.FRAMES_DIR == "frames"
    # correcting a propagated object with clicks makes its frame hand-made: the next propagation stops there
    oid, old_track = (saved(project, "000003.jpg")["objects"][0][k] for k in ("id", "track"))
    c.post(f"/api/images/3/objects/{oid}/refine")
    click(c, i=3, x=42, y=45)
    c.post("/api/images/3/finish", json={"label": 1})
    fixed = saved(project, "000003.jpg")["objects"]
    assert len(fixed) == 1 and fixed[0]["source"] == "manual" and fixed[0]["track"] == old_track
    job = c.post("/api/propagate", json={"from": 0, "direction": "forward"}).json()["job"]
    st = wait_job(c, job)
    assert sorted(st["frames"]) == [1, 2]


def test_unreadable_and_oversized_images_are_named_and_the_rest_works(tmp_path, monkeypatch):
    import ppseg.apps.annotate.imaging as imaging

    make_images(tmp_path / "p", 2)
    (tmp_path / "p" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "p" / "empty.png").write_bytes(b"")
    c, p = client_for(tmp_path / "p")
    keys = [r.key for r in p.records]
    for name in ("broken.jpg", "empty.png"):
        r = c.get(f"/api/images/{keys.index(name)}")
        assert r.status_code == 422 and name in r.json()["error"]
        r = c.post(f"/api/images/{keys.index(name)}/click", json={"x": 1, "y": 1})
        assert r.status_code == 422 and name in r.json()["error"]
    # a limit on pixels (a 64 x 48 image is "huge" under a 1000-pixel limit): named, before decoding
    monkeypatch.setattr(p, "cache", imaging.ImageCache(max_pixels=1000))
    r = c.get(f"/api/images/{keys.index('img0.png')}")
    assert r.status_code == 422 and "img0.png" in r.json()["error"]
    monkeypatch.setattr(p, "cache", imaging.ImageCache())
    click(c, i=keys.index("img1.png"))
    assert c.post(f"/api/images/{keys.index('img1.png')}/finish", json={"label": 1}).status_code == 200


def test_dicom_slice_opens_with_its_window_and_exports(tmp_path):
    pytest.importorskip("pydicom")
    from test_annotate_imaging import _write_dicom

    (tmp_path / "ct").mkdir()
    raw = np.full((64, 80), 1024, np.uint16)  # 0 HU after the intercept
    raw[20:44, 30:60] = 1424  # a 400 HU block
    _write_dicom(tmp_path / "ct" / "slice.dcm", raw, slope=1, intercept=-1024, center=200, width=400)
    (tmp_path / "scanner").mkdir()  # scanners write DICOM files without a suffix: known by their preamble
    _write_dicom(tmp_path / "scanner" / "IM-0001-0002", raw, slope=1, intercept=-1024)
    (tmp_path / "scanner" / "README").write_text("not an image")
    c, p = client_for(tmp_path / "scanner")
    assert [r.key for r in p.records] == ["IM-0001-0002"] and c.get("/api/images/0").json()["kind"] == "dicom"
    c, p = client_for(tmp_path / "ct")
    info = c.get("/api/images/0").json()
    assert info["kind"] == "dicom" and info["window"]["width"] == 400 and info["window"]["level"] == 200
    tile = cv2.imdecode(np.frombuffer(c.get("/api/images/0/tile/0/0/0").content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.max() == 255 and tile[0, 0].max() == 0  # 400 HU at the top of the window, 0 HU at its bottom
    click(c, x=45, y=30)
    c.post("/api/images/0/finish", json={"label": 1})
    r = c.post("/api/export", json={"format": "paddleseg"})
    assert r.status_code == 200, r.text
    out = Path(r.json()["path"])
    copied = next((out / "images").iterdir())
    assert copied.suffix == ".png"  # a DICOM is exported as the windowed image the user annotated
    assert cv2.imread(str(copied))[30, 45].max() == 255


def test_refine_a_finished_object_with_clicks(api):
    c, p, _ = api
    click(c, x=20, y=20)
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    oid = st["objects"][0]["id"]
    before = decode_mask(st["objects"][0], 48, 64)
    st = c.post(f"/api/images/0/objects/{oid}/refine").json()["state"]
    assert st["current"]["editing"] == oid and (decode_mask(st["current"]["mask"], 48, 64) == before).all()
    assert st["current"]["clicks"] == []  # the hidden anchor inside the object is not the user's click
    r = c.post("/api/images/0/objects/99/refine")
    assert r.status_code == 409 and "finish it" in r.json()["error"]  # one object clicked at a time
    out = click(c, x=40, y=30)  # the prior is fed back: the new click adds to the object
    grown = decode_mask(out["current"]["mask"], 48, 64)
    assert grown[20, 20] and grown[30, 40]
    st = c.post("/api/images/0/finish", json={"label": 1}).json()["state"]
    assert len(st["objects"]) == 1 and st["objects"][0]["id"] == oid and st["current"] is None
    assert (decode_mask(saved(p, "img0.png")["objects"][0], 48, 64) == grown).all()
    # undo walks back through the replacement and the refine clicks; cancel leaves the object alone
    st = c.post("/api/images/0/undo").json()["state"]
    assert st["current"]["editing"] == oid and (decode_mask(st["objects"][0], 48, 64) == before).all()
    st = c.post("/api/images/0/cancel").json()["state"]
    assert st["current"] is None and (decode_mask(st["objects"][0], 48, 64) == before).all()
    assert c.post("/api/images/0/objects/99/refine").status_code == 404
