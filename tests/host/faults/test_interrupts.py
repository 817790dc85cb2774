"""Interrupt latency of the pack's long loops through the real host: "cancel" stops them within a second."""
from __future__ import annotations

import threading
import time

import pytest

from . import harness as h


def test_interrupting_a_long_synthetic_scene_stops_within_a_second(host, monkeypatch):
    """5 views × 24 frames at 512² (minutes of work): cancel from another thread, as the server does."""
    import comfy.utils

    watch, started = h.Stopwatch(), threading.Event()

    def hook(value, total, preview, node_id=None):
        if not started.is_set():
            started.set()
            threading.Timer(0.3, watch.request_interrupt).start()

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    prompt = {"1": h.cameras_node(),
              "2": {"class_type": "SV4D2SyntheticScene",
                    "inputs": {"cameras": ["1", 0], "frames": 24, "width": 512, "height": 512}},
              "3": h.save_views_node(["2", 0], ["1", 0], "sv4d2_faults/scene")}
    before = h.output_files(host)
    start = time.perf_counter()
    with pytest.raises(h.NodeFailed, match="execution_interrupted"):
        host.run(prompt)
    stopped = time.perf_counter()
    assert watch.requested is not None, "the node reported no progress before it ended"
    assert stopped - watch.requested <= 1.0, f"stopped {stopped - watch.requested:.2f} s after the interrupt"
    assert stopped - start < 20.0
    assert h.output_files(host) == before
    monkeypatch.undo()
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(False)
    h.assert_still_works(host)
