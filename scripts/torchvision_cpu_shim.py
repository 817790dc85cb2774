"""Lets the CUDA-only torchvision wheel import on a CPU-only torch (test environment only).

torchvision registers fake kernels for `torchvision::nms`/`qnms` at import time; without its CUDA `_C.so`
those schemas are missing and the import fails. We declare the two schemas just before torchvision is
first imported (a lazy `sys.meta_path` hook, so torch itself is not imported early). Its C ops stay
unavailable; ComfyUI's code paths used by this pack do not need them.
"""
import sys


class _DeclareTorchvisionOps:
    done = False
    library = None

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" and not self.done:
            type(self).done = True
            import torch

            lib = torch.library.Library("torchvision", "FRAGMENT")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
            type(self).library = lib
        return None


sys.meta_path.insert(0, _DeclareTorchvisionOps())
