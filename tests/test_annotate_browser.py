"""End-to-end tests of ``ppseg annotate``'s page: the real server on real photos, driven by a
headless Chromium through Playwright (the sync API).

The server runs in a subprocess (``python -m ppseg annotate FOLDER --no-browser --port P --out
OUT``) on a copy of ``tests/data/annotate`` (two portraits and a street with a car). The tests
share one server and one page and run in file order: each step builds on the one before, as a
user's session would (click, finish, undo, edit, export, reload...).

Skipped (with the reason) when Playwright or a Chromium binary is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
if CHROMIUM is None:
    pytest.skip("no chromium binary (apt-get install chromium)", allow_module_level=True)

DATA = Path(__file__).parent / "data" / "annotate"
# Points picked by looking at the photos (image pixels, x right, y down).
PERSON = "person_1.jpg"  # 240 x 320, a woman's face in the middle
FACE = (120, 150)
BACKGROUND = (25, 40)  # foliage, top left
SWEATER = (120, 245)
CAR_IMAGE = "street_car.jpg"  # 320 x 240, a green car in the middle
CAR = (190, 170)
BUILDING = (40, 80)  # the shop front on the left
LATENCY_IMAGE = "person_2.jpg"  # 240 x 320, a man's face
LATENCY_CLICKS = [((130, 130), True), ((130, 250), True), ((20, 30), False), ((200, 200), True), ((60, 300), False)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(source: Path, out: Path, log_path: Path):
    """``ppseg annotate SOURCE`` in a subprocess on a free port; yields its URL."""
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "ppseg", "annotate", str(source), "--no-browser",
                             "--port", str(port), "--out", str(out)], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/api/project", timeout=2) as r:
                json.load(r)
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"ppseg annotate did not start:\n{log.read()[-3000:]}")
            time.sleep(0.2)
    try:
        yield {"url": url, "proc": proc}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotate")
    folder, out = root / "photos", root / "out"
    shutil.copytree(DATA, folder)
    with _serving(folder, out, root / "server.log") as srv:
        yield {**srv, "out": out, "folder": folder, "log": root / "server.log"}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    pg = browser.new_page(viewport={"width": 1400, "height": 820})
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(server["url"] + "/")
    pg.wait_for_function("window.ppseg && window.ppseg.ready", timeout=30000)
    yield pg
    pg.close()


@pytest.fixture(autouse=True)
def _no_page_errors(request):
    yield
    if "page" in request.fixturenames:
        pg = request.getfixturevalue("page")
        errors, pg.errors[:] = list(pg.errors), []
        assert not errors, f"JavaScript errors on the page: {errors}"


# ------------------------------------------------------------------ helpers
def api(server, method, path, body=None):
    req = urllib.request.Request(server["url"] + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def idle(pg):
    pg.evaluate("window.ppseg.idle()")


def state(pg):
    return pg.evaluate("window.ppseg.state.image")


def client(pg, x, y):
    c = pg.evaluate(f"window.ppseg.toClient({x}, {y})")
    return c["x"], c["y"]


def click_image(pg, x, y, positive=True, wait=True):
    pg.mouse.click(*client(pg, x, y), button="left" if positive else "right")
    if wait:
        idle(pg)


def open_image(pg, key):
    index = pg.evaluate(f"window.ppseg.state.images.findIndex(i => i.key === {json.dumps(key)})")
    assert index >= 0, key
    pg.click(f"[data-testid=image-row-{index}]")
    pg.wait_for_function(f"window.ppseg.state.index === {index} && window.ppseg.state.image && "
                         f"window.ppseg.state.image.index === {index}")
    pg.wait_for_function("[...window.ppseg.viewer.tiles.values()].some(t => t.state === 'ok')")
    return index


def canvas_pixel(pg, x, y):
    """The colour on screen at image pixel (x, y): the base canvas with the top one over it."""
    return pg.evaluate("""([x, y]) => {
        const v = window.ppseg.viewer, s = v.toScreen(x, y);
        return v.pixel(s.x, s.y);
    }""", [x, y])


def obj_area(pg, obj):
    return pg.evaluate("o => window.ppseg.maskArea(o)", obj)


def contains(pg, code, x, y):
    return pg.evaluate("([c, x, y]) => window.ppseg.maskContains(c, x, y)", [code, x, y])


def select_object(pg, oid):
    pg.click(f"[data-testid=object-row-{oid}] .obj-id")
    pg.wait_for_function(f"window.ppseg.state.selected === {oid}")


def drag(pg, a, b, steps=8):
    pg.mouse.move(*client(pg, *a))
    pg.mouse.down()
    for k in range(1, steps + 1):
        t = k / steps
        pg.mouse.move(*client(pg, a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
    pg.mouse.up()


# ------------------------------------------------------------------ the session
def test_page_lists_images_and_help(page, server):
    rows = page.locator("[data-testid^=image-row-]")
    assert rows.count() == 3
    assert page.locator("[data-testid=done-count]").inner_text() == "0 / 3"
    assert page.locator("[data-testid=label-row-1]").count() == 1
    # the help overlay lists every shortcut of the table the key handler uses
    assert page.locator("[data-testid=help]").is_hidden()
    page.keyboard.press("?")
    assert page.locator("[data-testid=help]").is_visible()
    n_table = page.evaluate("window.ppseg.shortcuts.length")
    assert page.locator("[data-testid=help-row]").count() == n_table >= 25
    text = page.locator("[data-testid=help]").inner_text()
    for needle in ("Undo", "Redo", "Next image", "Brush", "Eraser", "polygon", "Ctrl+Z", "Space"):
        assert needle in text
    page.keyboard.press("Escape")
    assert page.locator("[data-testid=help]").is_hidden()


def test_click_negative_finish_undo_redo(page, server):
    open_image(page, PERSON)
    before = canvas_pixel(page, *FACE)
    click_image(page, *FACE)
    cur = state(page)["current"]
    assert cur and len(cur["clicks"]) == 1 and cur["clicks"][0]["positive"]
    assert cur["mask"]["bbox"][2] > 20 and cur["mask"]["bbox"][3] > 20
    assert contains(page, cur["mask"], *FACE), "the mask does not cover the click"
    after = canvas_pixel(page, *FACE)
    assert after != before, "the mask was not drawn on the canvas"
    assert page.evaluate("window.ppseg.stats.clickLatencies.length") >= 1
    # a negative click on the background
    click_image(page, *BACKGROUND, positive=False)
    cur = state(page)["current"]
    assert [c["positive"] for c in cur["clicks"]] == [True, False]
    assert contains(page, cur["mask"], *FACE) and not contains(page, cur["mask"], *BACKGROUND)
    # Space finishes under the selected label
    page.keyboard.press("Space")
    idle(page)
    st = state(page)
    assert st["current"] is None and len(st["objects"]) == 1
    obj = st["objects"][0]
    assert obj["label"] == 1 and contains(page, obj, *FACE)
    assert page.locator("[data-testid=save-status]").inner_text() == "saved"
    assert page.locator(f"[data-testid=object-row-{obj['id']}]").count() == 1
    assert page.locator("[data-testid=image-list] .current").get_attribute("data-status") == "objects"
    # undo: the object is gone; redo: back
    page.keyboard.press("Control+z")
    idle(page)
    assert state(page)["objects"] == []
    page.keyboard.press("Control+y")
    idle(page)
    assert [o["id"] for o in state(page)["objects"]] == [obj["id"]]
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+Shift+z")
    idle(page)
    assert len(state(page)["objects"]) == 1
    # Esc cancels clicks in progress
    click_image(page, *SWEATER)
    assert state(page)["current"] is not None
    page.keyboard.press("Escape")
    idle(page)
    assert state(page)["current"] is None and len(state(page)["objects"]) == 1


def test_polygon_edit(page, server):
    obj = state(page)["objects"][0]
    select_object(page, obj["id"])
    page.keyboard.press("e")
    page.wait_for_function("window.ppseg.state.mode === 'polygon' && window.ppseg.polygon.active")
    rings = page.evaluate("window.ppseg.polygon.polygons")
    # the lowest vertex of all, dragged 25 px further down (the image is 320 high)
    ri, vi = max(((r, v) for r in range(len(rings)) for v in range(len(rings[r]))),
                 key=lambda rv: rings[rv[0]][rv[1]][1])
    x, y = rings[ri][vi]
    target = (x, min(318.0, y + 25))
    drag(page, (x, y), target)
    moved = page.evaluate(f"window.ppseg.polygon.polygons[{ri}][{vi}]")
    assert abs(moved[1] - target[1]) < 1.5, moved
    page.screenshot(path="/tmp/annotate_polygon.png")
    page.keyboard.press("Enter")
    idle(page)
    assert page.evaluate("window.ppseg.state.mode") == "click"
    new = state(page)["objects"][0]
    assert new["id"] == obj["id"]
    assert new["bbox"] != obj["bbox"] and obj_area(page, new) != obj_area(page, obj)
    assert new["bbox"][1] + new["bbox"][3] > obj["bbox"][1] + obj["bbox"][3]  # reaches lower
    assert contains(page, new, *FACE)
    # Esc leaves without applying
    page.keyboard.press("e")
    page.wait_for_function("window.ppseg.polygon.active")
    rings = page.evaluate("window.ppseg.polygon.polygons")
    ring = max(rings, key=len)
    drag(page, tuple(ring[0]), (ring[0][0] + 10, ring[0][1] + 10))
    page.keyboard.press("Escape")
    idle(page)
    assert page.evaluate("window.ppseg.polygon.active") is False
    assert state(page)["objects"][0]["counts"] == new["counts"]


def _raster(polygons, h, w):
    """The mask the server makes of polygons (its own rasteriser: pixel centres, even-odd)."""
    from ppseg.apps.annotate.exports import polygons_to_mask

    return polygons_to_mask([np.asarray(r, np.float64) for r in polygons if len(r) >= 3], h, w)


def test_polygon_add_and_delete_vertices(page, server):
    W, H = 240, 320
    obj = state(page)["objects"][0]
    old_mask = _decode(obj, H, W)
    select_object(page, obj["id"])
    page.keyboard.press("e")
    page.wait_for_function("window.ppseg.state.mode === 'polygon' && window.ppseg.polygon.active")
    rings = page.evaluate("window.ppseg.polygon.polygons")
    n0 = page.evaluate("window.ppseg.polygon.vertexCount()")
    assert n0 == sum(len(r) for r in rings)
    ri = max(range(len(rings)), key=lambda r: len(rings[r]))
    ring = rings[ri]
    tol = 1.5 / page.evaluate("window.ppseg.viewer.scale") + 0.1  # mouse events land on whole CSS pixels

    def edges_by_length(ring):
        return sorted(range(len(ring)), key=lambda i: -np.hypot(*np.subtract(ring[(i + 1) % len(ring)], ring[i])))

    # 1. double-click the middle of a long edge: a vertex there; drag it 15 px outwards
    before = _raster(rings, H, W)
    for e in edges_by_length(ring):
        a, b = np.array(ring[e], float), np.array(ring[(e + 1) % len(ring)], float)
        mid = (a + b) / 2
        normal = np.array([b[1] - a[1], a[0] - b[0]]) / np.hypot(*(b - a))
        for sign in (1, -1):
            out = mid + sign * 15 * normal
            probe = np.round(mid + sign * 6 * normal).astype(int)
            if 2 <= out[0] <= W - 3 and 2 <= out[1] <= H - 3 and not before[probe[1], probe[0]] \
                    and np.hypot(*(out - BACKGROUND)) > 30:
                break
        else:
            continue
        break
    else:
        pytest.fail(f"no edge of {ring} to push outwards")
    page.mouse.dblclick(*client(page, *mid))
    ring = page.evaluate(f"window.ppseg.polygon.polygons[{ri}]")
    assert page.evaluate("window.ppseg.polygon.vertexCount()") == n0 + 1
    added = ring[e + 1]
    assert np.hypot(*np.subtract(added, mid)) < tol, (added, mid)
    drag(page, tuple(added), tuple(out))
    added = page.evaluate(f"window.ppseg.polygon.polygons[{ri}][{e + 1}]")
    assert np.hypot(*np.subtract(added, out)) < tol, (added, out)
    # 2. Alt+click on another long edge: one more vertex, on that edge
    ring = page.evaluate(f"window.ppseg.polygon.polygons[{ri}]")
    e2 = next(i for i in edges_by_length(ring) if i not in (e, e + 1))
    a, b = np.array(ring[e2], float), np.array(ring[(e2 + 1) % len(ring)], float)
    at = a + (b - a) * 0.4
    page.keyboard.down("Alt")
    page.mouse.click(*client(page, *at))
    page.keyboard.up("Alt")
    ring = page.evaluate(f"window.ppseg.polygon.polygons[{ri}]")
    assert page.evaluate("window.ppseg.polygon.vertexCount()") == n0 + 2
    assert np.hypot(*np.subtract(ring[e2 + 1], at)) < tol, (ring[e2 + 1], at)
    inserted = [list(map(float, added)), list(map(float, ring[e2 + 1]))]
    # 3. the two vertices whose removal cuts most of the mask away (not the new ones nor their
    #    neighbours): one deleted by a right-click, the other by Delete with the mouse over it
    rings = page.evaluate("window.ppseg.polygon.polygons")
    cur = _raster(rings, H, W)
    gain = {}
    for v in range(len(ring)):
        if len(ring) <= 5 or any(np.hypot(*np.subtract(ring[k % len(ring)], p)) < 1e-6
                                 for p in inserted for k in (v - 1, v, v + 1)):
            continue
        trial = [r if k != ri else r[:v] + r[v + 1:] for k, r in enumerate(rings)]
        gain[v] = int((cur & ~_raster(trial, H, W)).sum())
    v1, v2 = sorted(gain, key=lambda v: -gain[v])[:2]
    p1, p2 = list(ring[v1]), list(ring[v2])
    assert gain[v1] > 20, gain
    page.mouse.click(*client(page, *p1), button="right")
    assert page.evaluate("window.ppseg.polygon.vertexCount()") == n0 + 1
    page.mouse.move(*client(page, *p2))
    assert page.evaluate("window.ppseg.polygon.hover && window.ppseg.polygon.hover.vertex") is not None
    page.keyboard.press("Delete")
    assert page.evaluate("window.ppseg.polygon.vertexCount()") == n0
    ring = page.evaluate(f"window.ppseg.polygon.polygons[{ri}]")
    assert p1 not in ring and p2 not in ring and all(p in ring for p in inserted)
    assert page.evaluate("window.ppseg.state.mode") == "polygon"  # Delete removed a vertex, not the object
    page.screenshot(path="/tmp/annotate_polygon_vertices.png")
    # apply: the page sends what it shows; the server's mask is those polygons filled
    final = page.evaluate("window.ppseg.polygon.polygons")
    with page.expect_request(lambda r: r.method == "PUT" and r.url.endswith(f"/objects/{obj['id']}/polygon")) as req:
        page.keyboard.press("Enter")
    idle(page)
    sent = json.loads(req.value.post_data)["polygons"]
    assert sent == [r for r in final if len(r) >= 3] and sum(len(r) for r in sent) == n0
    new = state(page)["objects"][0]
    assert new["id"] == obj["id"] and page.evaluate("window.ppseg.state.mode") == "click"
    got = _decode(new, H, W)
    expect = _raster(sent, H, W)
    # (the server rounds the points after shifting them to the polygons' box: .5 coordinates may
    # round the other way, so a boundary pixel may differ, nothing inside or outside)
    import cv2

    def band(m):  # the pixels within one pixel of the boundary of m
        k3, m = np.ones((3, 3), np.uint8), m.astype(np.uint8)
        return cv2.dilate(m, k3).astype(bool) & ~cv2.erode(m, k3).astype(bool)

    assert not ((got != expect) & ~band(expect)).any() and (got != expect).sum() < 0.02 * expect.sum()
    # ... it grew where the vertex was pulled out and lost what the two deleted vertices held
    core = ~band(expect) & ~band(before)
    grown, lost = expect & ~before & core, before & ~expect & core
    assert grown.sum() > 20 and (got & grown).sum() == grown.sum() and not (old_mask & grown).any()
    assert lost.sum() > 10 and not (got & lost).any() and (old_mask & lost).sum() == lost.sum()
    assert contains(page, new, *FACE) and contains(page, new, *np.round(out - 5 * normal * sign))
    # the server's own polygon now has a vertex near the pulled-out one and none at the deleted ones
    index = page.evaluate("window.ppseg.state.index")
    back = api(server, "GET", f"/api/images/{index}/objects/{obj['id']}/polygon")["polygons"]
    pts = np.concatenate([np.asarray(r, float) for r in back])
    assert np.hypot(*(pts - added).T).min() <= 2.0
    assert all(np.hypot(*(pts - p).T).min() > 1.0 for p in (p1, p2)) or gain[v2] < 5


def test_brush_and_eraser(page, server):
    obj = state(page)["objects"][0]
    select_object(page, obj["id"])
    a0 = obj_area(page, obj)
    page.keyboard.press("b")
    assert page.evaluate("window.ppseg.state.mode") == "brush"
    page.keyboard.press("]")
    radius = page.evaluate("window.ppseg.brush.radius")
    assert radius > 8
    drag(page, (205, 30), (225, 30))
    idle(page)
    o = state(page)["objects"][0]
    a1 = obj_area(page, o)
    assert a1 > a0 and contains(page, o, 215, 30)
    page.keyboard.press("x")
    assert page.evaluate("window.ppseg.state.mode") == "erase"
    drag(page, (110, SWEATER[1]), (130, SWEATER[1]))
    idle(page)
    o = state(page)["objects"][0]
    assert obj_area(page, o) < a1 and not contains(page, o, 120, SWEATER[1])
    page.keyboard.press("v")
    assert page.evaluate("window.ppseg.state.mode") == "click"
    # mark done with F: the list counts it
    page.keyboard.press("f")
    idle(page)
    assert page.locator("[data-testid=done-count]").inner_text() == "1 / 3"
    assert state(page)["status"] == "done"




LOWER_SCARF = (100, 265)  # the knitted scarf's lower part: outside the face object, which holds its top


def _editing_shown(pg, oid):
    """The page shows object oid as being corrected: its row marked, the status bar says so."""
    row = pg.locator(f"[data-testid=object-row-{oid}]")
    assert "editing" in row.get_attribute("class").split()
    assert pg.locator(f"[data-testid=object-editing-{oid}]").count() == 1
    assert pg.inner_text("[data-testid=status-editing]") == \
        f"correcting object #{oid}: click to fix, Space to apply, Esc to cancel"
    assert pg.inner_text("[data-testid=finish]") == "Apply"


def _editing_gone(pg, oid):
    assert "editing" not in pg.locator(f"[data-testid=object-row-{oid}]").get_attribute("class").split()
    assert pg.locator(f"[data-testid=object-editing-{oid}]").count() == 0
    assert pg.inner_text("[data-testid=status-editing]") == ""
    assert pg.inner_text("[data-testid=finish]") == "Finish"


def test_refine_object_with_clicks(page, server):
    """Correct a finished object with clicks (R): a positive click on the lower scarf grows the face
    object (which holds the scarf's top) down over it; Space applies (same id, label, place),
    Ctrl+Z brings the old mask back, Esc leaves it as it is."""
    import cv2

    W, H = 240, 320
    index = page.evaluate("window.ppseg.state.index")
    objs = api(server, "GET", f"/api/images/{index}")["state"]["objects"]
    assert len(objs) == 1
    obj = objs[0]
    before = _decode(obj, H, W)
    assert not before[LOWER_SCARF[1], LOWER_SCARF[0]] and before[FACE[1], FACE[0]]
    select_object(page, obj["id"])
    refine_button = page.locator(f"[data-testid=object-refine-{obj['id']}]")
    assert "(R)" in refine_button.get_attribute("title") and "click" in refine_button.get_attribute("title")
    # R: a click session from the object's mask; the page marks the object as being corrected
    page.keyboard.press("r")
    idle(page)
    cur = state(page)["current"]
    assert cur is not None and cur["editing"] == obj["id"] and cur["clicks"] == []
    assert (_decode(cur["mask"], H, W) == before).all()
    _editing_shown(page, obj["id"])
    # a positive click on the lower scarf: only the top canvas is repainted, the mask grows over it
    frame = page.evaluate("window.ppseg.viewer.frame")
    click_image(page, *LOWER_SCARF)
    assert page.evaluate("window.ppseg.viewer.frame") == frame, "a click repainted the base canvas"
    cur = state(page)["current"]
    assert cur["editing"] == obj["id"] and [c["positive"] for c in cur["clicks"]] == [True]
    fixed = _decode(cur["mask"], H, W)
    assert fixed[LOWER_SCARF[1], LOWER_SCARF[0]] and fixed[FACE[1], FACE[0]]
    grown, removed = fixed & ~before, before & ~fixed
    assert grown.sum() > 1500 and grown.sum() > 2 * removed.sum(), (grown.sum(), removed.sum())
    assert fixed[LOWER_SCARF[1] + 10:, :].sum() > before[LOWER_SCARF[1] + 10:, :].sum() + 500  # down the scarf
    _editing_shown(page, obj["id"])
    # one mask on screen, not two: where the old mask is no more the photo shows untinted (the
    # object is not drawn from the objects layer); on the face and on the scarf it grew over, one
    # tint in the object's colour (the current mask only)
    yy, xx = np.mgrid[0:H, 0:W]

    def far_inside(region):  # the pixel of region farthest from its edges, away from the click's dot
        far = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        far[np.hypot(xx - LOWER_SCARF[0], yy - LOWER_SCARF[1]) < 8] = 0
        y, x = np.unravel_index(np.argmax(far), far.shape)
        assert far[y, x] >= 3, far[y, x]
        return int(x), int(y)

    gone, added = far_inside(removed), far_inside(grown)
    inside = (FACE[0], FACE[1] - 25)  # the nose: in both masks, far from every edge
    assert fixed[inside[1], inside[0]] and before[inside[1], inside[0]]
    points = (gone, inside, added)
    shown = [canvas_pixel(page, *p) for p in points]
    page.keyboard.press("m")
    photo = [canvas_pixel(page, *p) for p in points]
    page.keyboard.press("m")
    alpha = page.evaluate("window.ppseg.viewer.opacity")
    colour = page.evaluate(f"window.ppseg.state.colorOf({obj['label']})")
    assert max(abs(a - b) for a, b in zip(shown[0][:3], photo[0][:3])) <= 2, (shown[0], photo[0])
    for s, p in zip(shown[1:], photo[1:]):
        once = [round(v * (1 - alpha) + c * alpha) for v, c in zip(p[:3], colour)]
        assert max(abs(a - b) for a, b in zip(s[:3], once)) <= 3, (s, p, once)
    page.screenshot(path="/tmp/annotate_refine.png")
    # Space applies: the same object (id, label, place), its mask replaced; no new object
    page.keyboard.press("Space")
    idle(page)
    st = state(page)
    assert st["current"] is None and [o["id"] for o in st["objects"]] == [obj["id"]]
    _editing_gone(page, obj["id"])
    objs = api(server, "GET", f"/api/images/{index}")["state"]["objects"]
    assert len(objs) == 1
    new = objs[0]
    assert (new["id"], new["label"]) == (obj["id"], obj["label"]) and new["source"] == "manual"
    got = _decode(new, H, W)
    assert (got == fixed).all() and got[LOWER_SCARF[1], LOWER_SCARF[0]] and got[FACE[1], FACE[0]]
    assert page.locator("[data-testid=object-list] .object-row").count() == 1
    assert page.inner_text("[data-testid=object-count]") == "(1)"
    # drawn from the objects layer now, as applied
    assert canvas_pixel(page, *gone)[:3] == shown[0][:3] and canvas_pixel(page, *added) != photo[2]
    # Ctrl+Z: the old mask is back (and the correction in progress, its click with it); Ctrl+Y applies again
    page.keyboard.press("Control+z")
    idle(page)
    back = api(server, "GET", f"/api/images/{index}")["state"]
    assert [o["id"] for o in back["objects"]] == [obj["id"]]
    assert (_decode(back["objects"][0], H, W) == before).all()
    assert back["current"]["editing"] == obj["id"] and len(back["current"]["clicks"]) == 1
    assert state(page)["current"]["editing"] == obj["id"]
    _editing_shown(page, obj["id"])
    page.keyboard.press("Control+y")
    idle(page)
    assert state(page)["current"] is None
    assert (_decode(state(page)["objects"][0], H, W) == fixed).all()
    _editing_gone(page, obj["id"])
    # R again, then Esc: the object stays as it is
    select_object(page, obj["id"])
    page.keyboard.press("r")
    idle(page)
    assert state(page)["current"]["editing"] == obj["id"]
    _editing_shown(page, obj["id"])
    page.keyboard.press("Escape")
    idle(page)
    assert state(page)["current"] is None
    _editing_gone(page, obj["id"])
    # the row's button starts it too; Cancel leaves the object as it is as well
    refine_button.click()
    idle(page)
    assert state(page)["current"]["editing"] == obj["id"]
    page.click("[data-testid=cancel]")
    idle(page)
    assert state(page)["current"] is None
    objs = api(server, "GET", f"/api/images/{index}")["state"]["objects"]
    assert len(objs) == 1 and objs[0]["id"] == obj["id"] and objs[0]["label"] == obj["label"]
    assert (_decode(objs[0], H, W) == fixed).all()
    assert canvas_pixel(page, *gone)[:3] == shown[0][:3] and canvas_pixel(page, *added) != photo[2]

def test_labels_relabel_and_reorder(page, server):
    open_image(page, CAR_IMAGE)
    page.click("[data-testid=label-add]")
    page.wait_for_selector("[data-testid=label-row-2]")
    page.keyboard.press("Escape")  # leave the name field
    labels = page.evaluate("window.ppseg.state.labels")
    assert [lab["id"] for lab in labels] == [1, 2]
    # rename label 2 through its name field
    name = page.locator("[data-testid=label-name-2]")
    name.fill("building")
    name.press("Enter")
    page.wait_for_function("window.ppseg.state.labels.some(l => l.id === 2 && l.name === 'building')")
    # the car under label 1, the building under label 2
    page.keyboard.press("1")
    click_image(page, *CAR)
    assert contains(page, state(page)["current"]["mask"], *CAR)
    page.keyboard.press("Enter")
    idle(page)
    page.keyboard.press("2")
    assert page.evaluate("window.ppseg.state.currentLabel") == 2
    click_image(page, *BUILDING)
    page.keyboard.press("Space")
    idle(page)
    objs = state(page)["objects"]
    assert [o["label"] for o in objs] == [1, 2]
    car, building = objs
    # relabel the car through its dropdown
    page.select_option(f"[data-testid=object-label-{car['id']}]", "2")
    idle(page)
    assert [o["label"] for o in state(page)["objects"]] == [2, 2]
    page.select_option(f"[data-testid=object-label-{car['id']}]", "1")
    idle(page)
    # paint order: lower the building (on top) below the car
    page.click(f"[data-testid=object-down-{building['id']}]")
    idle(page)
    assert [o["id"] for o in state(page)["objects"]] == [building["id"], car["id"]]
    page.click(f"[data-testid=object-up-{building['id']}]")
    idle(page)
    assert [o["id"] for o in state(page)["objects"]] == [car["id"], building["id"]]
    # the panel lists the topmost first
    rows = page.locator("[data-testid=object-list] .object-row")
    assert [rows.nth(k).get_attribute("data-id") for k in range(rows.count())] == [str(building["id"]), str(car["id"])]
    # labels.txt: export (a download), import (the list the file gives)
    with page.expect_download() as dl:
        page.click("[data-testid=label-export]")
    text = Path(dl.value.path()).read_text()
    assert "1 object" in text and "2 building" in text
    page.set_input_files("[data-testid=label-import-file]", files=[{
        "name": "labels.txt", "mimeType": "text/plain", "buffer": (text + "3 tree 0 200 0\n").encode()}])
    page.wait_for_selector("[data-testid=label-row-3]")
    assert page.evaluate("window.ppseg.state.labels.map(l => l.name)") == ["object", "building", "tree"]
    # keep-largest setting reaches the server
    page.check("[data-testid=keep-largest]")
    deadline = time.time() + 5
    while not api(server, "GET", "/api/project")["settings"]["keep_largest"] and time.time() < deadline:
        time.sleep(0.05)
    assert api(server, "GET", "/api/project")["settings"]["keep_largest"] is True
    page.uncheck("[data-testid=keep-largest]")


def test_labels_recolour_and_delete(page, server):
    assert state(page)["objects"] and page.evaluate("window.ppseg.state.info.key") == CAR_IMAGE
    building = next(o for o in state(page)["objects"] if o["label"] == 2)
    assert contains(page, building, *BUILDING)
    page.evaluate("window.ppseg.state.select(null)")  # no outline drawn over the pixel read below

    def shown():  # the pixel at BUILDING with the masks shown, and the photo's own (masks hidden)
        page.keyboard.press("m")
        photo = canvas_pixel(page, *BUILDING)
        page.keyboard.press("m")
        return canvas_pixel(page, *BUILDING), photo

    old_colour = next(lab["color"] for lab in api(server, "GET", "/api/labels")["labels"] if lab["id"] == 2)
    before, photo = shown()
    alpha = page.evaluate("window.ppseg.viewer.opacity")
    blend = lambda c: [round(p * (1 - alpha) + v * alpha) for p, v in zip(photo[:3], c)]  # noqa: E731
    assert max(abs(a - b) for a, b in zip(before[:3], blend(old_colour))) <= 3, (before, photo, old_colour)
    # recolour label 2 through its colour input: the server stores it, the building is drawn in it
    colour = [255, 0, 255] if old_colour != [255, 0, 255] else [0, 255, 255]
    page.locator("[data-testid=label-color-2]").fill("#%02x%02x%02x" % tuple(colour))
    joined = ",".join(map(str, colour))
    page.wait_for_function(f"window.ppseg.state.labels.find(l => l.id === 2).color.join() === '{joined}'")
    assert next(lab for lab in api(server, "GET", "/api/labels")["labels"] if lab["id"] == 2)["color"] == colour
    after, photo2 = shown()
    assert photo2 == photo and after != before
    assert max(abs(a - b) for a, b in zip(after[:3], blend(colour))) <= 3, (after, photo, colour)
    # an unused label (tree, 3) is deleted
    assert [lab["id"] for lab in api(server, "GET", "/api/labels")["labels"]] == [1, 2, 3]
    page.click("[data-testid=label-delete-3]")
    page.wait_for_selector("[data-testid=label-row-3]", state="detached")
    assert [lab["id"] for lab in api(server, "GET", "/api/labels")["labels"]] == [1, 2]
    assert page.evaluate("window.ppseg.state.labels.map(l => l.id)") == [1, 2]
    # one that objects use (building, 2): the server says no (409), the page shows why, the label stays
    with page.expect_response(lambda r: r.url.endswith("/api/labels") and r.request.method == "PUT") as resp:
        page.click("[data-testid=label-delete-2]")
    assert resp.value.status == 409
    msg = page.locator("[data-testid=message]")
    msg.wait_for(state="visible")
    error = resp.value.json()["error"]
    text = msg.locator(".text").inner_text()
    assert text == error and "building" in error and "1 object" in error, (text, error)
    assert "error" in msg.get_attribute("class")
    assert page.locator("[data-testid=label-row-2]").count() == 1
    assert page.locator("[data-testid=label-name-2]").input_value() == "building"
    assert [lab["id"] for lab in api(server, "GET", "/api/labels")["labels"]] == [1, 2]
    assert page.evaluate("window.ppseg.state.labels.map(l => l.id)") == [1, 2]
    page.click("[data-testid=message-close]")


def test_export_from_page(page, server):
    out = server["out"]
    for fmt in ("paddleseg", "coco"):
        page.select_option("[data-testid=export-format]", fmt)
        page.click("[data-testid=export-button]")
        page.wait_for_selector("[data-testid=export-result].ok, [data-testid=export-result].error", timeout=30000)
        result = page.locator("[data-testid=export-result]")
        assert "ok" in result.get_attribute("class"), result.inner_text()
        assert fmt in result.inner_text()
        page.evaluate("document.querySelector('[data-testid=export-result]').className = 'export-result'")
    from PIL import Image

    label_png = out / "exports" / "paddleseg" / "labels" / "person_1.png"
    assert label_png.is_file(), sorted(p.name for p in (out / "exports" / "paddleseg").rglob("*"))
    lab = np.array(Image.open(label_png))
    assert lab.shape == (320, 240)
    assert lab[FACE[1], FACE[0]] == 1 and lab[BACKGROUND[1], BACKGROUND[0]] == 0
    car_png = np.array(Image.open(out / "exports" / "paddleseg" / "labels" / "street_car.png"))
    assert car_png[CAR[1], CAR[0]] == 1 and car_png[BUILDING[1], BUILDING[0]] == 2
    coco = json.loads((out / "exports" / "coco" / "annotations.json").read_text())
    assert {c["name"] for c in coco["categories"]} >= {"object", "building"}
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 3


def test_reload_resumes_and_keys_navigate(page, server):
    index = page.evaluate("window.ppseg.state.index")
    n_objects = len(state(page)["objects"])
    page.reload()
    page.wait_for_function("window.ppseg && window.ppseg.ready && window.ppseg.state.image")
    assert page.evaluate("window.ppseg.state.index") == index
    assert len(state(page)["objects"]) == n_objects == 2
    assert page.locator("[data-testid=done-count]").inner_text() == "1 / 3"
    assert page.locator("[data-testid=object-list] .object-row").count() == 2
    # the person is still there, done
    person = page.evaluate(f"window.ppseg.state.images.findIndex(i => i.key === '{PERSON}')")
    assert page.locator(f"[data-testid=image-row-{person}]").get_attribute("data-status") == "done"
    for key, step in (("a", -1), ("d", 1), ("PageUp", -1), ("PageDown", 1), ("ArrowLeft", -1), ("ArrowRight", 1)):
        start = page.evaluate("window.ppseg.state.index")
        page.keyboard.press(key)
        expect = min(2, max(0, start + step))
        page.wait_for_function(f"window.ppseg.state.index === {expect} && window.ppseg.state.image "
                               f"&& window.ppseg.state.image.index === {expect}")
    page.keyboard.press("a")
    page.wait_for_function("window.ppseg.state.image && window.ppseg.state.image.index === "
                           "window.ppseg.state.index")
    now = page.evaluate("window.ppseg.state.index")
    deadline = time.time() + 5
    while api(server, "GET", "/api/project")["current"] != now and time.time() < deadline:
        time.sleep(0.05)
    assert api(server, "GET", "/api/project")["current"] == now


def test_click_latency(page, server):
    open_image(page, LATENCY_IMAGE)
    page.evaluate("window.ppseg.stats.clickLatencies.length = 0")
    n = 0
    for rnd in range(3):
        for (x, y), positive in LATENCY_CLICKS:
            click_image(page, x, y, positive)
            n += 1
        assert len(state(page)["current"]["clicks"]) == len(LATENCY_CLICKS)
        page.keyboard.press("Escape")
        idle(page)
    # clicks made faster than the model answers are queued, in order, never dropped
    for (x, y), positive in LATENCY_CLICKS[:3]:
        click_image(page, x, y, positive, wait=False)
    idle(page)
    n += 3
    clicks = state(page)["current"]["clicks"]
    assert [(c["x"], c["y"], c["positive"]) for c in clicks] == [(x, y, p) for (x, y), p in LATENCY_CLICKS[:3]]
    page.keyboard.press("Escape")
    idle(page)
    lat = page.evaluate("window.ppseg.stats.clickLatencies")
    infer = page.evaluate("window.ppseg.stats.inferMs")
    server_ms = page.evaluate("window.ppseg.stats.serverMs")
    breakdown = page.evaluate("window.ppseg.stats.breakdown")[:15]
    parts = {k: round(statistics.median([b[k] for b in breakdown if b.get(k) is not None]), 1)
             for k in breakdown[0] if isinstance(breakdown[0][k], (int, float))} if breakdown else {}
    assert len(lat) == n >= 15
    serial = lat[:15]
    q = statistics.quantiles(serial, n=10)
    p50, p90 = statistics.median(serial), q[8]
    report = {"clicks": len(serial), "p50_ms": round(p50, 1), "p90_ms": round(p90, 1),
              "max_ms": round(max(serial), 1), "latencies_ms": [round(v, 1) for v in serial],
              "queued_burst_ms": [round(v, 1) for v in lat[15:]],
              "server_infer_ms_p50": round(statistics.median(infer[-n:]), 1) if infer else None,
              "server_ms_p50": round(statistics.median(server_ms[:15]), 1) if server_ms else None,
              "breakdown_p50_ms": parts,
              "image": LATENCY_IMAGE, "threads": os.environ.get("OMP_NUM_THREADS")}
    print(f"\nclick latency (pointerdown -> mask on screen) over {len(serial)} clicks: "
          f"p50 {p50:.0f} ms, p90 {p90:.0f} ms; server p50 {report['server_ms_p50']} ms "
          f"(inference {report['server_infer_ms_p50']} ms); p50 parts {parts}")
    try:
        Path("/tmp/annotate_latency.json").write_text(json.dumps(report, indent=2))
    except OSError:
        pass
    assert p50 < 2000


def test_model_selector(page, server):
    lite, em = "zoo:click_mnv3_lite", "zoo:click_em_cells"
    project = api(server, "GET", "/api/project")
    names = [m["name"] for m in project["models"]]
    assert {lite, em} <= set(names) and project["model"] == lite
    select = page.locator("[data-testid=model-select]")
    assert select.is_enabled() and select.input_value() == lite
    options = select.locator("option")
    assert [options.nth(k).get_attribute("value") for k in range(options.count())] == names
    open_image(page, LATENCY_IMAGE)
    point = LATENCY_CLICKS[0][0]
    click_image(page, *point)
    with_lite = state(page)["current"]["mask"]
    page.keyboard.press("Escape")
    idle(page)
    # the other model: the server loads it, the page says so, the next click uses it
    select.select_option(em)
    page.wait_for_function(f"window.ppseg.state.project.model === {json.dumps(em)}", timeout=60000)
    assert api(server, "GET", "/api/project")["model"] == em
    assert em in page.locator("[data-testid=message] .text").inner_text()
    assert select.input_value() == em
    click_image(page, *point)
    cur = state(page)["current"]
    assert len(cur["clicks"]) == 1 and cur["mask"]["bbox"][2] > 0 and cur["mask"]["bbox"][3] > 0
    assert contains(page, cur["mask"], *point)
    assert cur["mask"] != with_lite, "the same mask as the general model's: was the model switched?"
    page.keyboard.press("Escape")
    idle(page)
    # and back
    select.select_option(lite)
    page.wait_for_function(f"window.ppseg.state.project.model === {json.dumps(lite)}", timeout=30000)
    assert api(server, "GET", "/api/project")["model"] == lite
    click_image(page, *point)
    assert state(page)["current"]["mask"] == with_lite
    page.keyboard.press("Escape")
    idle(page)


# ------------------------------------------------------------------ a large image
BIG = "big.png"  # 10000 x 10000: green, grey rectangles, a grey block at the centre
BIG_SIDE = 10000
BIG_BLOCK = (4600, 4600, 5600, 5400)  # x0, y0, x1, y1 of the centre block


def _new_page(browser, url):
    pg = browser.new_page(viewport={"width": 1400, "height": 820})
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(url + "/")
    return pg


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("annotate_big")
    folder = root / "images"
    folder.mkdir()
    img = np.empty((BIG_SIDE, BIG_SIDE, 3), np.uint8)
    img[:] = (40, 160, 60)  # BGR
    rng = np.random.default_rng(1)
    for _ in range(30):
        x, y = (int(v) for v in rng.integers(0, BIG_SIDE - 1500, 2))
        if x < BIG_BLOCK[2] + 200 and x + 1500 > BIG_BLOCK[0] - 200 and y < BIG_BLOCK[3] + 200 and y + 1500 > BIG_BLOCK[1] - 200:
            continue
        w, h = (int(v) for v in rng.integers(200, 1200, 2))
        g = int(rng.integers(90, 220))
        img[y:y + h, x:x + w] = g
    x0, y0, x1, y1 = BIG_BLOCK
    img[y0:y1, x0:x1] = 120
    img[:, ::64] = 20  # one-pixel dark lines: greyed unless the level-0 tiles are drawn
    assert cv2.imwrite(str(folder / BIG), img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del img
    shutil.copy(DATA / PERSON, folder / "small.jpg")
    with _serving(folder, root / "out", root / "server.log") as srv:
        yield srv


def test_large_image_opening_zoom_crop_and_outside_click(browser, big_server):
    pg = _new_page(browser, big_server["url"])
    try:
        # the big image (first in the list) decodes for seconds: the page says so, nothing is clickable
        pg.wait_for_selector("[data-testid=opening]:not([hidden])", timeout=20000)
        assert f"Opening {BIG}" in pg.inner_text("[data-testid=opening]")
        assert pg.is_disabled("[data-testid=finish]") and pg.is_disabled("[data-testid=cancel]")
        pg.screenshot(path="/tmp/annotate_opening.png")
        # the user moves on before it arrives: the latest navigation wins, the big one never shows
        pg.wait_for_function("window.ppseg && window.ppseg.ready !== undefined")
        pg.click("[data-testid=image-row-1]")
        pg.wait_for_function("window.ppseg.state.image && window.ppseg.state.image.index === 1", timeout=20000)
        assert pg.is_hidden("[data-testid=opening]")
        deadline = time.time() + 60  # until the server has answered the big image's request too
        while api(big_server, "GET", "/api/images")["images"][0]["width"] == 0 and time.time() < deadline:
            time.sleep(0.1)
        pg.wait_for_function("window.ppseg.ready", timeout=60000)
        time.sleep(0.3)
        assert pg.evaluate("[window.ppseg.state.index, window.ppseg.viewer.info.key, window.ppseg.state.info.key]") \
            == [1, "small.jpg", "small.jpg"]
        # open it now (decoded): its size is known; fit, then wheel-zoom on the centre block to level 0
        pg.click("[data-testid=image-row-0]")
        pg.wait_for_function("window.ppseg.state.image && window.ppseg.state.image.index === 0", timeout=60000)
        assert pg.evaluate("window.ppseg.state.images[0].width") == BIG_SIDE
        cx, cy = (BIG_BLOCK[0] + BIG_BLOCK[2]) // 2, (BIG_BLOCK[1] + BIG_BLOCK[3]) // 2
        pg.mouse.move(*client(pg, cx, cy))
        for _ in range(60):
            if pg.evaluate("window.ppseg.viewer.scale") >= 1:
                break
            pg.mouse.wheel(0, -300)
        pg.wait_for_function("window.ppseg.viewer.scale >= 1")
        assert pg.evaluate("window.ppseg.viewer.level()") == 0
        pg.wait_for_function("""(() => { const v = window.ppseg.viewer;
            return v.visibleTiles(0).every(t => { const e = v.tiles.get(v.tileKey(0, t.tx, t.ty)); return e && e.state === 'ok'; });
        })()""", timeout=30000)
        # a one-pixel line is sharp (dark), the block beside it grey
        line_x = (cx // 64) * 64
        darkest = min(canvas_pixel(pg, line_x + d / 4, cy)[0] for d in range(-2, 6))
        block = canvas_pixel(pg, line_x + 20.5, cy)
        assert darkest < 60 and abs(block[0] - 120) < 12, (darkest, block)
        pg.screenshot(path="/tmp/annotate_large_level0.png")
        # a click zoomed in: the click model works in a crop around the view, drawn as a box
        click_image(pg, cx + 20, cy + 20)
        cur = state(pg)["current"]
        w = cur["window"]
        assert w[2] - w[0] < BIG_SIDE and w[0] <= cx <= w[2] and w[1] <= cy <= w[3], w
        assert contains(pg, cur["mask"], cx + 20, cy + 20)
        assert not pg.is_disabled("[data-testid=finish]") and not pg.is_disabled("[data-testid=cancel]")
        for _ in range(3):
            pg.mouse.wheel(0, 300)
        time.sleep(0.3)
        pg.screenshot(path="/tmp/annotate_large_click.png")
        # a click outside that crop: the server refuses (409), the page says what to do
        click_image(pg, min(BIG_SIDE - 1, w[2] + 50), min(BIG_SIDE - 1, w[3] + 50))
        msg = pg.locator("[data-testid=message]")
        assert msg.is_visible() and "warn" in msg.get_attribute("class")
        text = msg.inner_text()
        assert "Space" in text and "Esc" in text and "outside" in text, text
        assert len(state(pg)["current"]["clicks"]) == 1
        pg.screenshot(path="/tmp/annotate_large_outside.png")
        pg.keyboard.press("Escape")
        idle(pg)
        assert state(pg)["current"] is None
        assert pg.is_disabled("[data-testid=finish]") and pg.is_disabled("[data-testid=cancel]")
        assert not pg.errors, pg.errors
    finally:
        pg.close()


# ------------------------------------------------------------------ 16-bit and DICOM images
GRAY16 = "scan16.png"  # 160 x 200, four vertical bands of 16-bit values
GRAY16_BANDS = (5000, 15000, 25000, 35000)
DICOM = "ct.dcm"  # the same bands in a CT slice (HU = raw - 1024), window 400 / 40 in the file
PHOTO = "photo.jpg"


@pytest.fixture(scope="module")
def window_server(tmp_path_factory):
    """A second server (the session's folder keeps its three photos): a 16-bit PNG, a DICOM slice, a photo."""
    import cv2

    root = tmp_path_factory.mktemp("annotate_16bit")
    folder = root / "images"
    folder.mkdir()
    bands = np.repeat(np.array(GRAY16_BANDS, np.uint16), 40)[None, :].repeat(200, 0)
    assert cv2.imwrite(str(folder / GRAY16), bands)
    from test_annotate_imaging import _write_dicom

    raw = np.repeat(np.array([1024 - 300, 1024 - 50, 1024 + 60, 1024 + 400], np.int16), 40)[None, :].repeat(200, 0)
    _write_dicom(folder / DICOM, raw, slope=1, intercept=-1024, center=40, width=400)
    shutil.copy(DATA / PERSON, folder / PHOTO)
    with _serving(folder, root / "out", root / "server.log") as srv:
        yield srv


def _windowed(v, width, level):
    """What the server shows for value v through a window (DICOM LINEAR_EXACT, as imaging.py does)."""
    return int(np.clip(np.rint((v - level) * 255.0 / width + 127.5), 0, 255))


def js_number(v):
    """A number as JavaScript writes it (String(v))."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def shown_window(pg):
    """(width, level) as the window panel's head shows them ("W 400  L 40.0")."""
    text = pg.text_content("[data-testid=window-value]")
    w, lv = text.split("L")
    return float(w.strip().lstrip("W")), float(lv)


def test_16bit_and_dicom_window(browser, window_server):
    pg = _new_page(browser, window_server["url"])
    srv = window_server
    try:
        pg.wait_for_function("window.ppseg && window.ppseg.ready", timeout=30000)
        panel = pg.locator("[data-testid=window-panel]")
        # the 16-bit PNG: the sliders show its window (the 1st..99th percentile by default)
        i16 = open_image(pg, GRAY16)
        info = api(srv, "GET", f"/api/images/{i16}")
        assert info["kind"] == "gray16" and info["window"] is not None
        w = info["window"]
        assert (w["min"], w["max"]) == (GRAY16_BANDS[0], GRAY16_BANDS[-1])
        assert panel.is_visible()
        ww, wl = pg.locator("[data-testid=window-width]"), pg.locator("[data-testid=window-level]")
        assert float(ww.input_value()) == w["width"] and float(wl.input_value()) == w["level"]
        band = (60, 100)  # in the second band (15000)
        pg.wait_for_function("window.ppseg.viewer.tiles.size > 0 && "
                             "[...window.ppseg.viewer.tiles.values()].every(t => t.state === 'ok')")
        px = canvas_pixel(pg, *band)
        assert abs(px[0] - _windowed(GRAY16_BANDS[1], w["width"], w["level"])) <= 2 and px[0] == px[1] == px[2], (px, w)
        # the level slider: new tiles for that window, a darker band; the server keeps the window
        level = w["level"] + 8000
        wl.fill(str(level))
        pg.wait_for_function(f"""[...window.ppseg.viewer.tiles.entries()].some(([k, t]) =>
            k.endsWith('|{js_number(w["width"])}|{js_number(level)}') && t.state === 'ok')""")
        pg.wait_for_function(f"(() => {{ const v = window.ppseg.viewer, s = v.toScreen({band[0]}, {band[1]});"
                             f" return v.pixel(s.x, s.y)[0] !== {px[0]}; }})()")
        px2 = canvas_pixel(pg, *band)
        assert abs(px2[0] - _windowed(GRAY16_BANDS[1], w["width"], level)) <= 2 and px2[0] < px[0], (px, px2)
        assert shown_window(pg) == (w["width"], level)
        deadline = time.time() + 5
        while api(srv, "GET", f"/api/images/{i16}")["window"]["level"] != level and time.time() < deadline:
            time.sleep(0.1)
        assert api(srv, "GET", f"/api/images/{i16}")["window"] == {**w, "level": level}
        pg.screenshot(path="/tmp/annotate_16bit.png")
        # a photo: no sliders
        open_image(pg, PHOTO)
        assert api(srv, "GET", f"/api/images/{pg.evaluate('window.ppseg.state.index')}")["window"] is None
        assert panel.is_hidden()
        # the DICOM slice: the sliders again, at the file's window
        idc = open_image(pg, DICOM)
        info = api(srv, "GET", f"/api/images/{idc}")
        assert info["kind"] == "dicom" and (info["window"]["width"], info["window"]["level"]) == (400, 40)
        assert panel.is_visible() and shown_window(pg) == (400, 40)
        assert (float(wl.get_attribute("min")), float(wl.get_attribute("max"))) == (-300, 400)
        # (a range input snaps to its step grid: the level slider may sit at 40.2, not 40)
        step = float(wl.get_attribute("step"))
        assert abs(float(ww.input_value()) - 400) <= step and abs(float(wl.input_value()) - 40) <= step
        hu = 60  # the third band: 60 HU
        px = canvas_pixel(pg, 100, 100)
        assert abs(px[0] - _windowed(hu, 400, 40)) <= 2, px
        ww.fill("100")
        width = float(ww.input_value())  # the slider's grid point nearest 100
        assert abs(width - 100) <= step
        key = f"|{js_number(width)}|40"  # the level untouched: 40, not the level slider's snapped 40.2
        pg.wait_for_function(f"[...window.ppseg.viewer.tiles.entries()].some(([k, t]) => "
                             f"k.endsWith('{key}') && t.state === 'ok')", timeout=5000)
        pg.wait_for_function("(() => { const v = window.ppseg.viewer, s = v.toScreen(100, 100);"
                             f" return v.pixel(s.x, s.y)[0] !== {px[0]}; }})()")
        assert abs(canvas_pixel(pg, 100, 100)[0] - _windowed(hu, width, 40)) <= 2
        deadline = time.time() + 5
        while api(srv, "GET", f"/api/images/{idc}")["window"]["width"] != width and time.time() < deadline:
            time.sleep(0.1)
        # moving the width slider leaves the level alone (not the level slider's snapped 40.2)
        assert api(srv, "GET", f"/api/images/{idc}")["window"]["width"] == width
        assert api(srv, "GET", f"/api/images/{idc}")["window"]["level"] == 40
        assert shown_window(pg) == pytest.approx((width, 40), rel=5e-3)  # 3 significant digits
        # back to the 16-bit image: its stored window comes back on the sliders
        open_image(pg, GRAY16)
        assert panel.is_visible() and float(wl.input_value()) == level and float(ww.input_value()) == w["width"]
        assert not pg.errors, pg.errors
    finally:
        pg.close()


# ------------------------------------------------------------------ a video project
VIDEO_W, VIDEO_H, VIDEO_N, VIDEO_R = 160, 120, 12, 17


def _video_disc(t):
    """(x, y) of the disc's centre in frame t: left to right, bobbing a little."""
    return 32.0 + 8.0 * t, 60.0 + 6.0 * np.sin(t / 3.0)


def _video_mask(t):
    x, y = _video_disc(t)
    yy, xx = np.mgrid[0:VIDEO_H, 0:VIDEO_W]
    return (xx - x) ** 2 + (yy - y) ** 2 <= VIDEO_R ** 2


@pytest.fixture(scope="module")
def video_server(tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("annotate_video")
    rng = np.random.default_rng(3)

    def texture(h, w, scale):
        noise = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
        return np.clip(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * 255 * scale, 0, 255).astype(np.uint8)

    bg = texture(VIDEO_H, VIDEO_W + 24, 0.6)
    bg[..., 2] //= 3  # BGR: a blue-green background
    fg = texture(2 * VIDEO_R + 2, 2 * VIDEO_R + 2, 1.0)
    fg[..., 2] = 150 + fg[..., 2] // 3  # a red disc
    fg[..., 0] //= 3
    path = root / "disc.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (VIDEO_W, VIDEO_H), True)
    assert writer.isOpened()
    for t in range(VIDEO_N):
        frame = bg[:, 2 * t:2 * t + VIDEO_W].copy()  # the camera pans
        x, y = _video_disc(t)
        yy, xx = np.nonzero(_video_mask(t))
        frame[yy, xx] = fg[np.clip(yy - int(round(y)) + VIDEO_R, 0, 2 * VIDEO_R + 1),
                           np.clip(xx - int(round(x)) + VIDEO_R, 0, 2 * VIDEO_R + 1)]
        writer.write(frame)
    writer.release()
    with _serving(path, root / "out", root / "server.log") as srv:
        yield {**srv, "log": root / "server.log"}


def _decode(code, h, w):
    out = np.zeros(h * w, bool)
    x, y, bw, bh = code["bbox"]
    crop = np.zeros(bw * bh, bool)
    pos = 0
    for k, n in enumerate(code["counts"]):
        if k % 2:
            crop[pos:pos + n] = True
        pos += n
    out = out.reshape(h, w)
    out[y:y + bh, x:x + bw] = crop.reshape(bh, bw)
    return out


def _iou(a, b):
    return float((a & b).sum()) / max(1, float((a | b).sum()))


def test_video_click_finish_propagate(browser, video_server):
    pg = _new_page(browser, video_server["url"])
    try:
        pg.wait_for_function("window.ppseg && window.ppseg.ready", timeout=30000)
        assert pg.evaluate("window.ppseg.state.project.kind") == "video"
        assert pg.locator("[data-testid=video-bar]").is_visible()
        assert pg.locator("[data-testid^=image-row-]").count() == VIDEO_N
        pg.wait_for_function("window.ppseg.state.index === 0 && window.ppseg.state.image")
        pg.wait_for_function("[...window.ppseg.viewer.tiles.values()].some(t => t.state === 'ok')")
        # the disc on frame 0: one click in it, one on the background
        x, y = _video_disc(0)
        click_image(pg, x, y)
        click_image(pg, 140, 15, positive=False)
        first = _decode(state(pg)["current"]["mask"], VIDEO_H, VIDEO_W)
        assert _iou(first, _video_mask(0)) > 0.6, _iou(first, _video_mask(0))
        pg.keyboard.press("Space")
        idle(pg)
        assert len(state(pg)["objects"]) == 1
        # propagate forward, wait for the job (the page polls /api/jobs and refreshes the list)
        pg.click("[data-testid=propagate-forward]")
        pg.wait_for_function("document.querySelector('[data-testid=video-bar]').classList.contains('busy') || "
                             "window.ppseg.state.images.slice(1).every(i => i.objects > 0)", timeout=10000)
        pg.wait_for_function("!document.querySelector('[data-testid=video-bar]').classList.contains('busy')",
                             timeout=60000)
        msg = pg.inner_text("[data-testid=message]")
        assert "failed" not in msg, msg
        images = api(video_server, "GET", "/api/images")["images"]
        assert all(im["objects"] >= 1 for im in images), [im["objects"] for im in images]
        pg.wait_for_function("window.ppseg.state.images.every(i => i.objects > 0)", timeout=5000)
        last = VIDEO_N - 1
        objs = api(video_server, "GET", f"/api/images/{last}")["state"]["objects"]
        assert objs and objs[0]["source"] == "propagated"
        got = _decode(objs[0], VIDEO_H, VIDEO_W)
        iou = _iou(got, _video_mask(last))
        assert iou > 0.5, f"propagated mask on frame {last}: IoU {iou:.2f} with the true disc"
        # scrub to the last frame: its propagated object is on the page
        pg.evaluate(f"""(() => {{ const s = document.querySelector('[data-testid=frame-slider]');
            s.value = '{last}'; s.dispatchEvent(new Event('input')); }})()""")
        pg.wait_for_function(f"window.ppseg.state.image && window.ppseg.state.image.index === {last}", timeout=10000)
        pg.wait_for_function("[...window.ppseg.viewer.tiles.values()].some(t => t.state === 'ok')")
        assert len(state(pg)["objects"]) >= 1
        assert pg.inner_text("[data-testid=frame-label]") == f"frame {VIDEO_N} / {VIDEO_N}"
        time.sleep(0.2)
        pg.screenshot(path="/tmp/annotate_video.png")
        assert not pg.errors, pg.errors
    finally:
        pg.close()
