"""The SV4D 2.0 denoising UNet in pure PyTorch, loading the official `model.diffusion_model.*` weights unchanged.

Where things are: `unet.py` (macro layout, input checks), `attention.py` (spatial / view / frame mixing, including
the 4-view "3D attention": `to_3d_attention_sequences`), `blocks.py` (ResBlocks and the Conv3d block over the
flattened T·V axis), `embeddings.py` (sinusoidal embeddings), `fused_cpu.py` (fused oneDNN kernels used for fp32 CPU
inference; `SV4D2UNet.set_cpu_fast_paths(False)` gives the plain reference computation).
"""
from .attention import attention
from .embeddings import timestep_embedding
from .unet import SV4D2UNet

__all__ = ["SV4D2UNet", "attention", "timestep_embedding"]
