"""Animated GLB of a fixed-topology mesh: one primitive, one morph target per frame, a named weights animation.

Written with pygltflib (it models the whole glTF 2.0 schema, morph targets and animations included; trimesh
cannot write either). The base mesh is the canonical one; target k holds frame k − base for POSITION (and
NORMAL when given), and the default weights show frame 0, so viewers without animation still show frame 0.
Colour is a baseColor texture (PNG or JPEG, sRGB, TEXCOORD_0) or linear vertex colours (COLOR_0).

Looping: with `closes_loop` the clip already ends where it starts (last frame = first), so the keys run over
(K − 1)/fps and the player's wrap-around is seamless; otherwise one more key at K/fps blends back to frame 0,
so the period is K/fps (each frame shown 1/fps, as in the source video) and the wrap has no jump.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pygltflib

_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENT = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE,
              np.dtype(np.uint32): pygltflib.UNSIGNED_INT}
_TYPE = {1: pygltflib.SCALAR, 2: pygltflib.VEC2, 3: pygltflib.VEC3, 4: pygltflib.VEC4}


@dataclass
class AnimatedMesh:
    """What goes into the GLB. vertices/normals (N, 3) float32, faces (M, 3) uint32; colour either `uv` (N, 2)
    (v down the image) + `texture` (S, S, 3) uint8 sRGB, or `colours` (N, 3) sRGB in [0, 1]; `frames` (K, N, 3)
    positions per frame, `frame_normals` (K, N, 3) or None (no normal morphs)."""

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    frames: np.ndarray
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    colours: np.ndarray | None = None
    frame_normals: np.ndarray | None = None


class _Buffer:
    """One binary buffer of 4-byte-aligned buffer views, with their accessors."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.blob = bytearray()

    def view(self, data: bytes, target: int | None = None) -> int:
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data),
                                                          target=target))
        self.blob += data + b"\0" * (-len(data) % 4)
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, target: int | None = None, bounds: bool = False,
                 normalized: bool = False) -> int:
        array = np.ascontiguousarray(array)
        flat = array.reshape(array.shape[0], -1)
        accessor = pygltflib.Accessor(bufferView=self.view(array.tobytes(), target),
                                      componentType=_COMPONENT[array.dtype], count=int(array.shape[0]),
                                      type=_TYPE[flat.shape[1]], normalized=normalized or None)
        if bounds:
            accessor.min, accessor.max = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def srgb_to_linear(colours: np.ndarray) -> np.ndarray:
    """sRGB → linear (glTF vertex colours are linear; textures stay sRGB)."""
    return np.where(colours <= 0.04045, colours / 12.92, ((colours + 0.055) / 1.055) ** 2.4)


def encode_image(texture: np.ndarray, image_format: str) -> tuple[bytes, str]:
    """PNG or JPEG (quality 92) bytes of an (S, S, 3) uint8 image, and its MIME type."""
    from PIL import Image

    if image_format not in ("png", "jpeg"):
        raise ValueError(f"texture format must be 'png' or 'jpeg', got {image_format!r}")
    out = io.BytesIO()
    Image.fromarray(texture).save(out, format=image_format.upper(), **({"quality": 92} if image_format == "jpeg"
                                                                       else {}))
    return out.getvalue(), f"image/{image_format}"


def animated_glb(mesh: AnimatedMesh, fps: float, name: str = "sv4d2", closes_loop: bool = False,
                 image_format: str = "png") -> bytes:
    """GLB bytes of `mesh`: node/mesh `name`, animation `name` playing `frames` at `fps` (see module docstring)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if (mesh.texture is None) == (mesh.colours is None):
        raise ValueError("give either a texture (with uv) or vertex colours")
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="comfyui-sv4d2"), scene=0)
    buffer = _Buffer(gltf)
    attributes = pygltflib.Attributes(
        POSITION=buffer.accessor(mesh.vertices.astype(np.float32), _ARRAY_BUFFER, bounds=True),
        NORMAL=buffer.accessor(mesh.normals.astype(np.float32), _ARRAY_BUFFER))
    pbr = pygltflib.PbrMetallicRoughness(metallicFactor=0.0, roughnessFactor=1.0)
    if mesh.texture is not None:
        attributes.TEXCOORD_0 = buffer.accessor(mesh.uv.astype(np.float32), _ARRAY_BUFFER)
        data, mime = encode_image(mesh.texture, image_format)
        gltf.images.append(pygltflib.Image(bufferView=buffer.view(data), mimeType=mime, name=f"{name}_basecolor"))
        gltf.samplers.append(pygltflib.Sampler(magFilter=pygltflib.LINEAR, minFilter=pygltflib.LINEAR_MIPMAP_LINEAR,
                                               wrapS=pygltflib.CLAMP_TO_EDGE, wrapT=pygltflib.CLAMP_TO_EDGE))
        gltf.textures.append(pygltflib.Texture(source=0, sampler=0))
        pbr.baseColorTexture = pygltflib.TextureInfo(index=0)
    else:
        linear = np.round(srgb_to_linear(np.clip(mesh.colours, 0, 1)) * 255).astype(np.uint8)
        rgba = np.concatenate((linear, np.full((len(linear), 1), 255, np.uint8)), axis=1)
        attributes.COLOR_0 = buffer.accessor(rgba, _ARRAY_BUFFER, normalized=True)
    gltf.materials.append(pygltflib.Material(name=f"{name}_material", pbrMetallicRoughness=pbr, doubleSided=True))
    primitive = pygltflib.Primitive(attributes=attributes, material=0, mode=pygltflib.TRIANGLES,
                                    indices=buffer.accessor(mesh.faces.astype(np.uint32).reshape(-1),
                                                            _ELEMENT_ARRAY_BUFFER, bounds=True))
    gltf_mesh = pygltflib.Mesh(name=name, primitives=[primitive])
    gltf.meshes.append(gltf_mesh)
    gltf.nodes.append(pygltflib.Node(name=name, mesh=0))
    gltf.scenes.append(pygltflib.Scene(nodes=[0]))
    num_frames = mesh.frames.shape[0]
    if num_frames > 1:
        base = mesh.vertices.astype(np.float32)
        for k in range(num_frames):
            target = {"POSITION": buffer.accessor((mesh.frames[k] - base).astype(np.float32), _ARRAY_BUFFER,
                                                  bounds=True)}
            if mesh.frame_normals is not None:
                target["NORMAL"] = buffer.accessor((mesh.frame_normals[k] - mesh.normals).astype(np.float32),
                                                   _ARRAY_BUFFER)
            primitive.targets.append(target)
        gltf_mesh.weights = [1.0] + [0.0] * (num_frames - 1)
        gltf_mesh.extras = {"targetNames": [f"frame_{k:03d}" for k in range(num_frames)]}
        keys = np.arange(num_frames, dtype=np.float32)
        weights = np.eye(num_frames, dtype=np.float32)
        if not closes_loop:
            keys = np.append(keys, np.float32(num_frames))
            weights = np.concatenate((weights, weights[:1]))
        sampler = pygltflib.AnimationSampler(input=buffer.accessor(keys / np.float32(fps), bounds=True),
                                             output=buffer.accessor(weights.reshape(-1)), interpolation="LINEAR")
        gltf.animations.append(pygltflib.Animation(
            name=name, samplers=[sampler],
            channels=[pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(
                node=0, path="weights"))]))
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(buffer.blob)))
    gltf.set_binary_blob(bytes(buffer.blob))
    return b"".join(gltf.save_to_bytes())


def _read_accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = {v: k for k, v in _COMPONENT.items()}[accessor.componentType]
    width = {v: k for k, v in _TYPE.items()}[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    data = np.frombuffer(blob, dtype, accessor.count * width, start)
    return data.reshape(accessor.count, width) if width > 1 else data


def read_glb(data: bytes) -> AnimatedMesh:
    """The mesh of a GLB written by `animated_glb` (frames rebuilt from the morph targets; vertex colours back in
    sRGB), for the turntable preview and for checks of written files."""
    from PIL import Image

    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = gltf.binary_blob()
    primitive = gltf.meshes[0].primitives[0]
    vertices = _read_accessor(gltf, blob, primitive.attributes.POSITION)
    normals = _read_accessor(gltf, blob, primitive.attributes.NORMAL)
    faces = _read_accessor(gltf, blob, primitive.indices).reshape(-1, 3)
    targets = primitive.targets or []
    frames = np.stack([vertices + _read_accessor(gltf, blob, t["POSITION"]) for t in targets]) if targets \
        else vertices[None]
    frame_normals = None
    if targets and "NORMAL" in targets[0]:
        frame_normals = np.stack([normals + _read_accessor(gltf, blob, t["NORMAL"]) for t in targets])
    mesh = AnimatedMesh(vertices, normals, faces, frames, frame_normals=frame_normals)
    if primitive.attributes.TEXCOORD_0 is not None:
        mesh.uv = _read_accessor(gltf, blob, primitive.attributes.TEXCOORD_0)
        view = gltf.bufferViews[gltf.images[0].bufferView]
        image = blob[view.byteOffset:view.byteOffset + view.byteLength]
        mesh.texture = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    else:
        linear = _read_accessor(gltf, blob, primitive.attributes.COLOR_0)[:, :3] / 255.0
        mesh.colours = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return mesh
