"""Procedural surgical endoscopy videos with pixel-exact binary instrument masks."""

from .config import GENERATOR_VERSION, SceneConfig
from .video import SceneRenderer, generate_video
from .writer import video_dir_name, write_dataset, write_demo_video

__all__ = [
    "GENERATOR_VERSION",
    "SceneConfig",
    "SceneRenderer",
    "generate_video",
    "video_dir_name",
    "write_dataset",
    "write_demo_video",
]
