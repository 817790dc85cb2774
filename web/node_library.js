// How the SV4D2 nodes are found in the node library and the search box: words a user may type for each node.
// Frontends that read `search_aliases` from node definitions (1.4x and newer) match them; older ones ignore the
// field. Core 0.8.0 has no way to declare them, so they are added to the definitions before the frontend
// registers the nodes.
import { registerOnce } from "./sv4d2_common.js";

const COMMON = ["sv4d", "sv4d 2.0", "stable video 4d", "4d"];
const SEARCH_ALIASES = {
  SV4D2LoadModel: ["load sv4d checkpoint", "novel view model", "multi-view diffusion model"],
  SV4D2PrepareVideo: ["video to square", "resize video", "remove background", "object video"],
  SV4D2Cameras: ["camera orbit", "azimuth", "elevation", "views", "novel view cameras"],
  SV4D2EncodeVideo: ["conditioning", "encode video", "clip vision", "image to multiview"],
  SV4D2CFGGrid: ["cfg", "guidance", "guidance scale", "classifier-free guidance", "heat map"],
  SV4D2SampleNVVS: ["novel view synthesis", "nvvs", "multi-view video", "multiview", "sampler", "generate views"],
  SV4D2ExtendVideo: ["long video", "extend", "autoregressive", "more frames"],
  SV4D2Refine: ["refine", "denoise", "improve views", "img2img"],
  SV4D2SaveViews: ["save video", "save views", "mp4", "grid image"],
  SV4D2Fit4D: ["nerf", "dynamic nerf", "4d reconstruction", "fit", "multi-view to 3d"],
  SV4D2Render4D: ["render nerf", "render views", "turntable"],
  SV4D2Metrics4D: ["psnr", "ssim", "score", "evaluate", "held-out"],
  SV4D2Export4DMesh: ["glb", "gltf", "mesh", "animated mesh", "export 3d", "marching cubes"],
  SV4D2SyntheticScene: ["test scene", "synthetic", "demo scene", "multi-view test video"],
};

registerOnce({
  name: "SV4D2.NodeLibrary",
  addCustomNodeDefs(defs) {
    for (const [nodeId, aliases] of Object.entries(SEARCH_ALIASES)) {
      const def = defs[nodeId];
      if (def) def.search_aliases = [...new Set([...(def.search_aliases ?? []), ...aliases, ...COMMON])];
    }
  },
});
