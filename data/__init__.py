"""Scene loading: Blender, LLFF and nerfstudio / instant-ngp folders, and pixel batching.

`load_scene(path, downsample)` detects the format and returns a `Scene` whose cameras are OpenCV
camera-to-world matrices with pixel intrinsics; `RayBatcher` draws random training pixels;
`build_demo_scene(folder)` writes the embedded demo scene (Open3D is imported only then).
This package depends on nothing else in tensorfields.
"""

from .batcher import PixelBatch, RayBatcher
from .cameras import Cameras
from .demo import build_demo_scene
from .load import load_scene, scene_summary
from .scene import Scene, SceneError

__all__ = [
    "Cameras",
    "PixelBatch",
    "RayBatcher",
    "Scene",
    "SceneError",
    "build_demo_scene",
    "load_scene",
    "scene_summary",
]
