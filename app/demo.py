"""The default demo video: generated once by :func:`synthetic.write_demo_video` and cached.

Cache directory: ``$SURGSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/surgical-seg``, else ``~/.cache/surgical-seg``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.errors import SetupError
from app.size import Size
from engine.paths import cache_root

LOG = logging.getLogger(__name__)

DEMO_SEED = 0
DEMO_FRAMES = 300
DEMO_SIZE = Size(height=720, width=1280)
DEMO_FPS = 25.0


def cache_dir() -> Path:
    """The directory for generated demo/bench videos (not created here): the project's cache root."""
    return cache_root()


def generated_video(
    num_frames: int,
    width: int,
    height: int,
    fps: float = DEMO_FPS,
    seed: int = DEMO_SEED,
    generator: str = "scene",
) -> Path:
    """A cached generated video: ``scene`` (the surgical generator, :mod:`synthetic`) or
    ``shapes`` (:mod:`synthetic.shapes`: fast numbered frames for tests).

    The file name records the generator (and its version) and the parameters, so a change
    regenerates instead of reusing.
    """
    if generator == "scene":
        from synthetic import GENERATOR_VERSION  # lazy: heavy to import

        generator = f"scene{GENERATOR_VERSION}"
    elif generator != "shapes":
        raise ValueError(f"generator {generator!r}: expected scene or shapes")
    path = cache_dir() / f"{generator}-s{seed}-{num_frames}f-{width}x{height}-{fps:g}fps.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SetupError(f"cache directory {path.parent} cannot be created: {error} (set SURGSEG_CACHE_DIR)") from error
    LOG.warning("generating %s (%d frames, %dx%d) once; cached for later runs", path, num_frames, width, height)
    if generator != "shapes":
        from synthetic import write_demo_video

        write_demo_video(path, seed=seed, num_frames=num_frames, width=width, height=height, fps=fps)
    else:
        from synthetic.shapes import write_test_video

        write_test_video(path, num_frames=num_frames, width=width, height=height, fps=fps, seed=seed)
    return path


def demo_video() -> Path:
    """The default demo video of ``python -m app`` (generated on first use)."""
    return generated_video(DEMO_FRAMES, width=DEMO_SIZE.width, height=DEMO_SIZE.height)
