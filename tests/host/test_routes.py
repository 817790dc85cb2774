"""The editors' HTTP routes on a real ComfyUI server: bodies over the size limit and malformed camera lists get a
status and a message that say what is wrong, every time."""
from __future__ import annotations

import http.client
import json
from typing import Iterable

import pytest

ROUTE = "/sv4d2/cfg_grid"
LIMIT = 2 * 64 * 1024  # nodes/guidance.py MAX_REQUEST_BYTES: twice the longest grid spec


def post_raw(server, body: bytes | Iterable[bytes], *, chunked: bool = False) -> tuple[int, dict]:
    """POST raw bytes (with a Content-Length, or chunked without one); (status, JSON reply)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request("POST", ROUTE, body=body, headers={"Content-Type": "application/json"},
                           encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def long_grid(size: int) -> bytes:
    """A JSON body of `size` bytes whose grid string is unterminated unless read to its end."""
    head = b'{"grid": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


@pytest.mark.parametrize("size", [LIMIT + 1, 150 * 1024 * 1024], ids=["limit+1", "150MB"])
def test_too_large_bodies_get_413_naming_the_limit(comfy_server, size):
    body = long_grid(size)
    for _ in range(3):  # the same answer every time, however much of the body has arrived
        status, reply = post_raw(comfy_server, body)
        assert status == 413, reply
        assert f"larger than the {LIMIT} bytes" in reply["error"], reply


def test_too_large_streamed_body_gets_413(comfy_server):
    """Without a Content-Length the body is counted as it arrives."""
    chunks = [b'{"grid": "'] + [b"x" * 65536] * 8 + [b'"}']
    status, reply = post_raw(comfy_server, iter(chunks), chunked=True)
    assert status == 413 and f"larger than the {LIMIT} bytes" in reply["error"], reply


def test_body_read_to_its_end_below_the_limit(comfy_server):
    """A body just under the limit, streamed in pieces, is read whole: the spec's own length check answers."""
    body = long_grid(LIMIT - 10)
    status, reply = post_raw(comfy_server, iter([body[i:i + 8192] for i in range(0, len(body), 8192)]), chunked=True)
    assert status == 400 and "characters long; a grid spec is at most 65536" in reply["error"], reply


@pytest.mark.parametrize("azimuths", [[0, [60], 120, 180, 240], {"a": 1}, [0, "a", 120, 180, 240], [0, True, 1, 2, 3]])
def test_malformed_azimuths_say_what_is_expected(comfy_server, azimuths):
    status, reply = post_raw(comfy_server, json.dumps({"grid": '{"preset": "ramp"}', "num_frames": 12,
                                                       "num_views": 4, "azimuths_deg": azimuths}).encode())
    assert status == 400, reply
    assert reply["error"].startswith("azimuths_deg must be a flat list of numbers in degrees, the input view first "
                                     "(4 + 1 of them), or null; got "), reply


def test_good_azimuths_shape_the_ramp(comfy_server):
    status, reply = post_raw(comfy_server, json.dumps({"grid": '{"preset": "ramp"}', "num_frames": 12,
                                                       "num_views": 4, "azimuths_deg": [0, 90, 120, 180, 240]}).encode())
    assert status == 200 and reply["view_distance"][0] == 0.5, reply
