"""Scene configuration knobs for the synthetic surgical video generator."""

from __future__ import annotations

from dataclasses import dataclass, replace

GENERATOR_VERSION = "1.2.0"  # 1.2.0: extended_instruments (off by default: default scenes as in 1.1.0)


@dataclass(frozen=True)
class SceneConfig:
    """Optional knobs; defaults give fully randomised, realistic scenes.

    Geometry/content switches keep the random streams unchanged, so toggling one of
    them renders the *same* scene with that element removed (used by the tests).
    """

    min_instruments: int = 1
    max_instruments: int = 3
    draw_instruments: bool = True  # False: same scene, background plate only
    camera_motion: bool = True  # slow pan / zoom / roll of the endoscope
    tissue_deformation: bool = True  # breathing-like smooth non-rigid warp
    field_stop: bool = True  # circular / elliptic / rounded-rect black border (randomised, sometimes none)
    lens_distortion: bool = True  # occasional slight barrel distortion
    occluders: bool = True  # blood pools / tissue flaps drawn over instruments
    withdrawals: bool = True  # instruments occasionally leave the view (empty frames)
    # More kinds of instrument seen in real footage: white/pale plastic laparoscopic shafts, close-up shafts that
    # fill much of the frame, dark strongly ribbed robotic (da Vinci style) shafts. Off by default, which keeps
    # every scene of a given seed as generator 1.1.0 drew it (held-out sets stay reproducible).
    extended_instruments: bool = False
    # post-effects: change the image, never the mask
    shadows: bool = True
    smoke: bool = True
    motion_blur: bool = True
    defocus: bool = True
    sensor_noise: bool = True
    jpeg: bool = True
    color_jitter: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_instruments <= self.max_instruments:
            raise ValueError("need 0 <= min_instruments <= max_instruments")

    def without_post_effects(self) -> SceneConfig:
        """Return a copy with every image-only post-effect disabled (geometry unchanged)."""
        return replace(
            self,
            shadows=False,
            smoke=False,
            motion_blur=False,
            defocus=False,
            sensor_noise=False,
            jpeg=False,
            color_jitter=False,
        )
