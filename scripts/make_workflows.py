"""Writes the example workflows in example_workflows/ from the node definitions a real ComfyUI serves.

Each graph is built from code, then opened in the real frontend (headless Chromium), laid out and saved exactly
as the editor saves it (`JSON.stringify(graph.serialize())`), with a thumbnail `<name>.jpg` (older frontends show
it; newer core serves the .json only). ComfyUI's template browser titles a pack's templates by file name, hence
the "SV4D 2.0 - …" names. Run `.venv/bin/python scripts/make_workflows.py` after changing a node's inputs; CI
executes every file through the headless runner (tests/host/test_workflows.py) and opens each in the browser
(tests/browser/test_templates_browser.py), so a stale workflow fails there. Settings are the production ones
(576², 50 steps, official CFG grids); CI and the main job's smoke run shrink them with `--set` overrides.
"""
from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from headless.browser import CHROMIUM, CHROMIUM_FLAGS, SETTINGS, open_comfy  # noqa: E402
from headless.editor import EditorGraph  # noqa: E402
from headless.server import ComfyServer, find_comfyui  # noqa: E402
from sv4d_lib.guidance import PRESETS  # noqa: E402

SAMPLE_VIDEO = "sample_object.mp4"
REAL_SCENE_VIEWS, REAL_SCENE_HELDOUT = "sv4d2_maidroid_views.png", "sv4d2_maidroid_heldout.png"  # assets/README.md
HELDOUT_CAMERAS = json.dumps({"elevations_deg": [15.0, 0.0, -10.0], "azimuths_deg": [90.0, 210.0, 330.0]})
CKPT_4V, CKPT_8V = "checkpoints/sv4d2.safetensors", "checkpoints/sv4d2_8views.safetensors"
# the fit-your-own template's second camera set: the two side views on the ring and two views from above
ELEVATED_CAMERAS = json.dumps({"elevations_deg": [0.0, 0.0, 0.0, 40.0, 40.0],
                               "azimuths_deg": [0.0, 90.0, 270.0, 45.0, 225.0]})
GRID_8V = json.dumps({"preset": "official_8v", "params": PRESETS["official_8v"]})
WORKFLOWS: dict[str, callable] = {}


def workflow(name: str):
    def register(build):
        WORKFLOWS[name] = build
        return build
    return register


def load_input_video(g: EditorGraph, frames: int | None = None):
    """Load Video → frames (optionally the first `frames`) → SV4D2 Prepare Video."""
    video = g.add("LoadVideo", title="Load Video", file=SAMPLE_VIDEO)
    images = g.add("GetVideoComponents", title="Video Frames", video=video.out(0)).out("images")
    if frames:
        images = g.add("ImageFromBatch", title=f"First {frames} Frames", image=images, batch_index=0,
                       length=frames).out(0)
    return g.add("SV4D2PrepareVideo", title="Prepare Video", frames=images, size=576, mode="official").out(0)


def load_model(g: EditorGraph, ckpt: str):
    return g.add("SV4D2LoadModel", title="Load Model", ckpt_name=ckpt, variant="auto", precision="auto")


def nvvs(g: EditorGraph, ckpt: str, preset: str, frames: int, grid: str | None = None):
    """The one-chunk novel-view video pipeline; returns (model, frames, cameras, sample node)."""
    prepared = load_input_video(g, frames)
    model = load_model(g, ckpt)
    cameras = g.add("SV4D2Cameras", title="Cameras", preset=preset).out(0)
    encoded = g.add("SV4D2EncodeVideo", title="Encode Video", clip_vision=model.out("CLIP_VISION"),
                    vae=model.out("VAE"), frames=prepared, cameras=cameras)
    extra = {"grid": grid} if grid else {}
    sample = g.add("SV4D2SampleNVVS", title="Sample NVVS", model=model.out("MODEL"), positive=encoded.out("positive"),
                   negative=encoded.out("negative"), cameras=cameras, vae=model.out("VAE"), steps=50, seed=23,
                   decoding_t=4, frames=prepared, **extra)
    return model, prepared, cameras, sample


@workflow("SV4D 2.0 - 4 views")
def four_views(g: EditorGraph) -> None:
    g.note("**SV4D 2.0, 4-view model**: a 12-frame object video → 4 novel-view videos (60/120/180/240°) at 576².\n"
           "Load your own video in *Load Video*; put `sv4d2.safetensors` in `models/checkpoints` (or tick "
           "*download* in Load Model). The CFG grid editor on *Sample NVVS* shows the scale per frame and view.")
    _, _, cameras, sample = nvvs(g, CKPT_4V, "4v", 12)
    g.add("SV4D2SaveViews", title="Save Views", images=sample.out("multiview"), cameras=cameras,
          filename_prefix="sv4d2/4views")
    g.add("SaveImage", title="Save Grid", images=sample.out("grid"), filename_prefix="sv4d2/4views_grid")


@workflow("SV4D 2.0 - 8 views")
def eight_views(g: EditorGraph) -> None:
    g.note("**SV4D 2.0, 8-view model**: a 5-frame object video → 8 novel-view videos (30°…330°) at 576², with the "
           "official 8-view CFG grid (rises with the distance from the input view and with time).\n"
           "Needs `sv4d2_8views.safetensors` in `models/checkpoints`.")
    _, _, cameras, sample = nvvs(g, CKPT_8V, "8v", 5, grid=GRID_8V)
    g.add("SV4D2SaveViews", title="Save Views", images=sample.out("multiview"), cameras=cameras,
          filename_prefix="sv4d2/8views")
    g.add("SaveImage", title="Save Grid", images=sample.out("grid"), filename_prefix="sv4d2/8views_grid")


def extend(g: EditorGraph, model, prepared, cameras):
    return g.add("SV4D2ExtendVideo", title="Extend Video", model=model.out("MODEL"),
                 clip_vision=model.out("CLIP_VISION"), vae=model.out("VAE"), frames=prepared, cameras=cameras,
                 steps=50, seed=23, decoding_t=4)


@workflow("SV4D 2.0 - long video")
def long_video(g: EditorGraph) -> None:
    g.note("**Any length**: the whole video is sampled window by window (official autoregressive extension: each "
           "window is conditioned on the novel views of its first frame from the previous window). 21 frames → "
           "windows 0-11 and 9-20 with the 4-view model.")
    prepared = load_input_video(g)
    model = load_model(g, CKPT_4V)
    cameras = g.add("SV4D2Cameras", title="Cameras", preset="4v").out(0)
    views = extend(g, model, prepared, cameras)
    g.add("SV4D2SaveViews", title="Save Views", images=views.out("multiview"), cameras=cameras,
          filename_prefix="sv4d2/long")


@workflow("SV4D 2.0 - full pipeline")
def full_pipeline(g: EditorGraph) -> None:
    g.note("**The paper's full pipeline**: video → multi-view videos (autoregressive NVVS) → 4D fit, stage 1 → "
           "render the fit → refine the renders with SV4D 2.0 (noise-and-denoise) → 4D fit, stage 2 (warm start) → "
           "animated GLB, played by *Preview 3D*. This is the README's main job.")
    prepared = load_input_video(g)
    model = load_model(g, CKPT_4V)
    cameras = g.add("SV4D2Cameras", title="Cameras", preset="4v").out(0)
    views = extend(g, model, prepared, cameras)
    g.add("SV4D2SaveViews", title="Save Views", images=views.out("multiview"), cameras=cameras,
          filename_prefix="sv4d2/pipeline_views")
    stage1 = g.add("SV4D2Fit4D", title="Fit 4D (stage 1)", images=views.out("multiview"), cameras=cameras, stage=1,
                   preset="default", resolution=128, seed=0)
    renders = g.add("SV4D2Render4D", title="Render 4D", field=stage1.out(0), cameras=cameras, frames=0, width=576,
                    height=576)
    refined = g.add("SV4D2Refine", title="Refine", model=model.out("MODEL"), clip_vision=model.out("CLIP_VISION"),
                    vae=model.out("VAE"), frames=prepared, cameras=cameras, multiview=renders.out("images"),
                    strength=0.5, steps=50, seed=23, decoding_t=4)
    g.add("SV4D2SaveViews", title="Save Refined Views", images=refined.out("multiview"), cameras=cameras,
          filename_prefix="sv4d2/pipeline_refined")
    stage2 = g.add("SV4D2Fit4D", title="Fit 4D (stage 2)", images=refined.out("multiview"), cameras=cameras,
                   stage=2, preset="draft", resolution=128, seed=0, init_field=stage1.out(0))
    video = next(n for n in g.nodes if n.type == "LoadVideo")  # the animation plays at the source's frame rate
    # the texture is projected from the generated views (crisper than the refined renders of the field)
    mesh = g.add("SV4D2Export4DMesh", title="Export 4D Mesh", field=stage2.out(0), filename_prefix="sv4d2/asset",
                 video=video.out(0), images=views.out("multiview"), cameras=cameras)
    g.add("Preview3D", title="Preview 3D", model_file=mesh.out("model_file"))


@workflow("SV4D 2.0 - fit your own multi-view videos")
def fit_own_videos(g: EditorGraph) -> None:
    g.note("**Fit a 4D asset from your own multi-view videos** (any tool's, any number of views, with known orbit "
           "cameras). Replace each *Synthetic Scene* by a set of your videos as one view-major IMAGE batch (all "
           "frames of the input view, then each other view; e.g. Load Video per view → Image Batch) and set its "
           "*Cameras* to that set's orbit (custom: one elevation and azimuth per view, input view first). *Merge "
           "Views* puts the sets together (the input view once, duplicates dropped, orbit order); one set alone can "
           "go straight into Fit 4D.")
    sets = []
    for number, preset in ((1, "8v"), (2, "custom")):
        cameras = g.add("SV4D2Cameras", title=f"Cameras (set {number})", preset=preset,
                        cameras=ELEVATED_CAMERAS).out(0)
        scene = g.add("SV4D2SyntheticScene", title=f"Synthetic Scene (set {number})", cameras=cameras, frames=12,
                      width=128, height=128)
        sets.append((scene.out("images"), cameras))
    merged = g.add("SV4D2MergeViews", title="Merge Views", multiview_1=sets[0][0], cameras_1=sets[0][1],
                   multiview_2=sets[1][0], cameras_2=sets[1][1])
    g.add("PreviewAny", title="Show Merged Views", source=merged.out("report"))
    cameras = merged.out("cameras")
    field = g.add("SV4D2Fit4D", title="Fit 4D", images=merged.out("multiview"), cameras=cameras, stage=1,
                  preset="default", resolution=128, seed=0)
    renders = g.add("SV4D2Render4D", title="Render 4D", field=field.out(0), cameras=cameras, frames=12, width=128,
                    height=128)
    metrics = g.add("SV4D2Metrics4D", title="Metrics", images=renders.out("images"),
                    reference=merged.out("multiview"))
    g.add("PreviewAny", title="Show Metrics", source=metrics.out("report"))
    mesh = g.add("SV4D2Export4DMesh", title="Export 4D Mesh", field=field.out(0), filename_prefix="sv4d2/own_videos",
                 fps=12.0, images=merged.out("multiview"), cameras=cameras)
    g.add("Preview3D", title="Preview 3D", model_file=mesh.out("model_file"))


@workflow("SV4D 2.0 - dense 4D")
def dense_4d(g: EditorGraph) -> None:
    g.note("**Dense 4D**: both SV4D 2.0 models on the same video — the 4-view model (60/120/180/240°) and the "
           "8-view model (30°…330°) — merged into 12 views (*Merge Views*: input view once, 120° from the first "
           "pass, frames checked to line up), then the paper's 4D stage: fit (stage 1) → render each model's views → "
           "refine them with that model → merge → fit (stage 2) → animated GLB. More silhouette directions give the "
           "fit a better shape (docs/nerf4d_analysis.md). Needs `sv4d2.safetensors` and `sv4d2_8views.safetensors`; "
           "costs per pass are in the README.")
    prepared = load_input_video(g)
    passes = []
    for label, ckpt, preset, grid in (("4 views", CKPT_4V, "4v", None), ("8 views", CKPT_8V, "8v", GRID_8V)):
        model = g.add("SV4D2LoadModel", title=f"Load Model ({label})", ckpt_name=ckpt, variant="auto",
                      precision="auto")
        cameras = g.add("SV4D2Cameras", title=f"Cameras ({label})", preset=preset).out(0)
        extra = {"grid": grid} if grid else {}
        views = g.add("SV4D2ExtendVideo", title=f"Extend Video ({label})", model=model.out("MODEL"),
                      clip_vision=model.out("CLIP_VISION"), vae=model.out("VAE"), frames=prepared, cameras=cameras,
                      steps=50, seed=23, decoding_t=4, pad_frames=True, **extra)
        passes.append((label, model, cameras, extra, views.out("multiview")))

    def merge(title: str, videos: list):
        """Merge Views of one multi-view video per pass, with the passes' cameras, and a view of its report."""
        sockets = {}
        for number, (one_pass, images) in enumerate(zip(passes, videos), start=1):
            sockets |= {f"multiview_{number}": images, f"cameras_{number}": one_pass[2]}
        node = g.add("SV4D2MergeViews", title=title, input_frames=prepared, **sockets)
        g.add("PreviewAny", title=f"Show {title}", source=node.out("report"))
        return node

    merged = merge("Merge Views", [p[4] for p in passes])
    g.add("SV4D2SaveViews", title="Save Merged Views", images=merged.out("multiview"), cameras=merged.out("cameras"),
          filename_prefix="sv4d2/dense_views")
    stage1 = g.add("SV4D2Fit4D", title="Fit 4D (stage 1)", images=merged.out("multiview"),
                   cameras=merged.out("cameras"), stage=1, preset="default", resolution=128, seed=0)
    refined = []
    for label, model, cameras, extra, _ in passes:
        renders = g.add("SV4D2Render4D", title=f"Render 4D ({label})", field=stage1.out(0), cameras=cameras,
                        frames=0, width=576, height=576)
        refined.append(g.add("SV4D2Refine", title=f"Refine ({label})", model=model.out("MODEL"),
                             clip_vision=model.out("CLIP_VISION"), vae=model.out("VAE"), frames=prepared,
                             cameras=cameras, multiview=renders.out("images"), strength=0.5, steps=50, seed=23,
                             decoding_t=4, pad_frames=True, **extra).out("multiview"))
    merged_refined = merge("Merge Refined Views", refined)
    stage2 = g.add("SV4D2Fit4D", title="Fit 4D (stage 2)", images=merged_refined.out("multiview"),
                   cameras=merged_refined.out("cameras"), stage=2, preset="draft", resolution=128, seed=0,
                   init_field=stage1.out(0))
    video = next(n for n in g.nodes if n.type == "LoadVideo")  # the animation plays at the source's frame rate
    mesh = g.add("SV4D2Export4DMesh", title="Export 4D Mesh", field=stage2.out(0), filename_prefix="sv4d2/dense_asset",
                 video=video.out(0), images=merged.out("multiview"), cameras=merged.out("cameras"))
    g.add("Preview3D", title="Preview 3D", model_file=mesh.out("model_file"))


@workflow("SV4D 2.0 - core samplers")
def core_samplers(g: EditorGraph) -> None:
    g.note("**Core samplers**: the SV4D 2.0 MODEL and the per-(frame, view) CFG GUIDER in ComfyUI's own nodes — "
           "*SamplerCustomAdvanced* (official: euler, Karras σ 700→0.002, ρ 7 = the EDM schedule) and *KSampler* "
           "(its cfg is ignored: the patched MODEL applies the grid). The last row refines the result with core "
           "nodes: Split Sigmas → Add Noise to the low half's level → SamplerCustomAdvanced (Disable Noise) on the "
           "rest of the schedule. (SV4D2 Refine does this for pixel videos, e.g. 4D renders.)")
    prepared = load_input_video(g, 12)
    model = load_model(g, CKPT_4V)
    cameras = g.add("SV4D2Cameras", title="Cameras", preset="4v").out(0)
    encoded = g.add("SV4D2EncodeVideo", title="Encode Video", clip_vision=model.out("CLIP_VISION"),
                    vae=model.out("VAE"), frames=prepared, cameras=cameras)
    grid = g.add("SV4D2CFGGrid", title="CFG Grid", model=model.out("MODEL"), positive=encoded.out("positive"),
                 negative=encoded.out("negative"), cameras=cameras)
    noise = g.add("RandomNoise", title="Noise", noise_seed=23)
    sampler = g.add("KSamplerSelect", title="Euler", sampler_name="euler")
    sigmas = g.add("BasicScheduler", title="EDM Sigmas", model=model.out("MODEL"), scheduler="karras", steps=50,
                   denoise=1.0)
    custom = g.add("SamplerCustomAdvanced", title="Sampler (custom)", noise=noise.out(0), guider=grid.out("GUIDER"),
                   sampler=sampler.out(0), sigmas=sigmas.out(0), latent_image=encoded.out("latent"))
    decoded = g.add("VAEDecode", title="Decode", samples=custom.out(0), vae=model.out("VAE"))
    g.add("SaveImage", title="Save (custom)", images=decoded.out(0), filename_prefix="sv4d2/core_custom")
    ksampler = g.add("KSampler", title="KSampler", model=grid.out("MODEL"), positive=encoded.out("positive"),
                     negative=encoded.out("negative"), latent_image=encoded.out("latent"), seed=23, steps=50,
                     cfg=1.0, sampler_name="euler", scheduler="karras", denoise=1.0)
    decoded_k = g.add("VAEDecode", title="Decode (KSampler)", samples=ksampler.out(0), vae=model.out("VAE"))
    g.add("SaveImage", title="Save (KSampler)", images=decoded_k.out(0), filename_prefix="sv4d2/core_ksampler")
    # noise-and-denoise refinement with core nodes: re-noise the result to the split point, denoise the rest
    split = g.add("SplitSigmas", title="Split Sigmas", sigmas=sigmas.out(0), step=25)
    noisy = g.add("AddNoise", title="Add Noise", model=model.out("MODEL"), noise=noise.out(0),
                  sigmas=split.out("low_sigmas"), latent_image=custom.out(0))
    refined = g.add("SamplerCustomAdvanced", title="Refine (core)", noise=g.add("DisableNoise").out(0),
                    guider=grid.out("GUIDER"), sampler=sampler.out(0), sigmas=split.out("low_sigmas"),
                    latent_image=noisy.out(0))
    decoded_r = g.add("VAEDecode", title="Decode (refined)", samples=refined.out(0), vae=model.out("VAE"))
    g.add("SaveImage", title="Save (refined)", images=decoded_r.out(0), filename_prefix="sv4d2/core_refined")


@workflow("SV4D 2.0 - 4D fit of a real scene")
def real_scene(g: EditorGraph) -> None:
    g.note("**4D fit of a real scene** (no diffusion model needed): a walking game character (CC BY-SA 4.0, see the "
           "pack's assets/README.md) seen from 5 orbit views (elevation 5°, the 4-view model's azimuths) × 21 frames "
           "→ Fit 4D → animated GLB in *Preview 3D*, a preview video of the fit from the same views, and its PSNR/SSIM "
           "on 3 held-out views it never saw. The same graph fits SV4D 2.0's own multi-view videos.")
    views = g.add("LoadImage", title="Load Views", image=REAL_SCENE_VIEWS)
    masks = g.add("InvertMask", title="Alpha to Mask", mask=views.out("MASK"))
    cameras = g.add("SV4D2Cameras", title="Cameras", preset="4v", elevation_deg=5.0).out(0)
    field = g.add("SV4D2Fit4D", title="Fit 4D", images=views.out("IMAGE"), cameras=cameras, masks=masks.out(0)).out(0)
    mesh = g.add("SV4D2Export4DMesh", title="Export 4D Mesh", field=field, filename_prefix="sv4d2/real_scene",
                 fps=15.0, images=views.out("IMAGE"), cameras=cameras, masks=masks.out(0))  # the walk's own rate
    g.add("Preview3D", title="Preview 3D", model_file=mesh.out("model_file"))
    renders = g.add("SV4D2Render4D", title="Render 4D", field=field, cameras=cameras, width=128, height=128)
    video = g.add("CreateVideo", title="Preview Video", images=renders.out("images"), fps=15.0)
    g.add("SaveVideo", title="Save Preview Video", video=video.out(0), filename_prefix="sv4d2/real_scene_preview")
    heldout = g.add("LoadImage", title="Load Held-out Views", image=REAL_SCENE_HELDOUT)
    # scored at the render size (128² = the scene's own, so a no-op here; smaller renders make quick test runs)
    reference = g.add("ImageScale", title="Held-out Size", image=heldout.out("IMAGE"), upscale_method="area",
                      width=128, height=128, crop="disabled")
    heldout_cameras = g.add("SV4D2Cameras", title="Held-out Cameras", preset="custom", cameras=HELDOUT_CAMERAS)
    heldout_renders = g.add("SV4D2Render4D", title="Render Held-out Views", field=field,
                            cameras=heldout_cameras.out(0), width=128, height=128)
    metrics = g.add("SV4D2Metrics4D", title="Held-out Score", images=heldout_renders.out("images"),
                    reference=reference.out(0))
    g.add("PreviewAny", title="Show Held-out Score", source=metrics.out("report"))


VIEW = (1600, 1000)
TOP_LEFT = (70, 130)  # the frontend's side bar and menus
LAY_OUT = """async (graph) => {
  await app.loadGraphData(graph);
  for (const node of app.graph._nodes) {
    const size = node.computeSize();
    node.setSize([Math.max(320, size[0]), size[1]]);
  }
  app.graph.arrange(80);
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const node of app.graph._nodes) {
    x0 = Math.min(x0, node.pos[0]); y0 = Math.min(y0, node.pos[1] - 40);
    x1 = Math.max(x1, node.pos[0] + node.size[0]); y1 = Math.max(y1, node.pos[1] + node.size[1]);
  }
  const scale = 0.97 * Math.min((%d - %d) / (x1 - x0), (%d - %d) / (y1 - y0));
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [%d / scale - x0, %d / scale - y0];
  app.graph.setDirtyCanvas(true, true);
  return JSON.parse(JSON.stringify(app.graph.serialize()));  // what the editor saves: no undefined → null
}""" % (VIEW[0], TOP_LEFT[0], VIEW[1], TOP_LEFT[1], TOP_LEFT[0], TOP_LEFT[1])


def main() -> None:
    from playwright.sync_api import sync_playwright

    out = REPO / "example_workflows"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        user = Path(tmp) / "user" / "default"
        user.mkdir(parents=True)
        (user / "comfy.settings.json").write_text(json.dumps(SETTINGS))
        server = ComfyServer(find_comfyui(), Path(tmp) / "output", input_dir=REPO / "assets",
                             extra_args=("--user-directory", str(user.parent)))
        with server, sync_playwright() as playwright:
            object_info = server.object_info()
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
            page = open_comfy(browser, server, width=VIEW[0], height=VIEW[1])
            for name, build in WORKFLOWS.items():
                graph = EditorGraph(object_info)
                build(graph)
                saved = page.evaluate(LAY_OUT, graph.to_json())
                (out / f"{name}.json").write_text(json.dumps(saved, indent=1) + "\n")
                page.wait_for_timeout(1500)  # DOM widgets (editors, video preview) settle
                shot = page.screenshot(clip={"x": TOP_LEFT[0] - 10, "y": TOP_LEFT[1] - 10,
                                             "width": VIEW[0] - TOP_LEFT[0], "height": VIEW[1] - TOP_LEFT[1]})
                thumbnail = Image.open(io.BytesIO(shot)).convert("RGB")
                thumbnail.thumbnail((800, 500))
                thumbnail.save(out / f"{name}.jpg", quality=85)
                print(f"wrote example_workflows/{name}.json and .jpg")
            browser.close()


if __name__ == "__main__":
    main()
