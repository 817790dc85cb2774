"""POST /sv4d2/cfg_grid (the grid editor's preview) under hostile requests: always a bounded 400 with a message,
never a 500, a NaN literal or a stalled event loop."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from sv4d_lib import guidance

ROUTE = "/sv4d2/cfg_grid"


@pytest.fixture(scope="module")
def client(host):
    """An aiohttp test client serving the pack's routes as registered on the host's PromptServer."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from server import PromptServer

    app = web.Application()
    app.router.add_routes([r for r in PromptServer.instance.routes
                           if isinstance(r, web.RouteDef) and r.path.startswith("/sv4d2/")])
    async def start() -> TestClient:  # aiohttp builds its client inside a running loop
        started = TestClient(TestServer(app))
        await started.start_server()
        return started

    test_client = host.loop.run_until_complete(start())
    yield test_client
    host.loop.run_until_complete(test_client.close())


def post(host, client, body: str) -> tuple[int, str, float]:
    async def send():
        start = time.perf_counter()
        response = await client.post(ROUTE, data=body, headers={"Content-Type": "application/json"})
        return response.status, await response.text(), time.perf_counter() - start

    return host.loop.run_until_complete(send())


def strict_json(text: str):
    """Parse as a browser would: NaN/Infinity literals are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} literal in the reply")

    return json.loads(text, parse_constant=refuse)


def test_a_valid_request_still_answers(host, client):
    status, text, _ = post(host, client, json.dumps({"grid": guidance.DEFAULT_GRID_SPEC, "num_frames": 12,
                                                     "num_views": 4}))
    assert status == 200
    assert len(strict_json(text)["scales"]) == 12


@pytest.mark.parametrize("body, problem", [
    ({"grid": json.dumps({"preset": "ramp"}), "num_frames": 100000, "num_views": 100000}, "from 1 to 256"),
    ({"grid": json.dumps({"preset": "ramp"}), "num_frames": 3000, "num_views": 3000}, "from 1 to 256"),
    ({"grid": json.dumps({"preset": "ramp", "shape": [3000, 3000]})}, "from 1 to 256"),
    ({"grid": "[" * 5000 + "]" * 5000, "num_frames": 12, "num_views": 4}, "nested too deeply"),
    ({"grid": json.dumps({"preset": "ramp"}), "num_frames": 12, "num_views": 4,
      "azimuths_deg": [0, float("nan"), 90, 180, 270]}, "camera angles must be finite numbers"),
    ({"grid": json.dumps({"preset": "ramp"}), "num_frames": 12, "num_views": 4,
      "azimuths_deg": [0, float("inf"), 90, 180, 270]}, "camera angles must be finite numbers"),
    ({"grid": json.dumps({"preset": "ramp"}), "num_frames": 12, "num_views": 4, "azimuths_deg": "abc"},
     "azimuths_deg must be a flat list of numbers"),
    ([1, 2], "must be a JSON object"),
])
def test_hostile_requests_get_a_quick_400_with_the_problem(host, client, body, problem):
    status, text, seconds = post(host, client, json.dumps(body))
    assert status == 400 and problem in strict_json(text)["error"]
    assert seconds < 2.0 and len(text) < 2000


@pytest.mark.parametrize("raw, expected, problem", [
    ("[" * 60000 + "]" * 60000, 400, "nested too deeply"),
    ("x" * 300000, 413, "larger than the 131072 bytes"),
    ("{not json", 400, "not valid JSON"),
])
def test_unparsable_bodies_are_refused_with_the_problem(host, client, raw, expected, problem):
    status, text, _ = post(host, client, raw)
    assert status == expected and problem in strict_json(text)["error"]


def test_the_grid_is_computed_off_the_event_loop(host, client, monkeypatch):
    """While a slow preview computes, the server still answers other requests."""
    from aiohttp import web
    from server import PromptServer

    handler = next(r.handler for r in PromptServer.instance.routes
                   if isinstance(r, web.RouteDef) and r.path == ROUTE and r.method == "POST")
    computed = handler.__globals__["preview_json"]  # the module the handler runs in, as ComfyUI loaded it

    def slow(raw):
        time.sleep(1.0)
        return computed(raw)

    monkeypatch.setitem(handler.__globals__, "preview_json", slow)

    async def both():
        body = json.dumps({"grid": guidance.DEFAULT_GRID_SPEC, "num_frames": 12, "num_views": 4})
        slow_request = asyncio.ensure_future(client.post(ROUTE, data=body))
        await asyncio.sleep(0.1)
        start = time.perf_counter()
        presets = await client.get(ROUTE)
        answered = time.perf_counter() - start
        return presets.status, answered, (await slow_request).status

    presets_status, answered, slow_status = host.loop.run_until_complete(both())
    assert presets_status == 200 and slow_status == 200
    assert answered < 0.5, f"GET waited {answered:.2f} s for the POST's computation"
