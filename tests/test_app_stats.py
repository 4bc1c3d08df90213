"""The frames accounting of the stats JSON: every input frame counted once, under one reason."""

from __future__ import annotations

from app.core.stats import frame_accounting


def test_a_stale_frame_is_counted_once_as_stale_not_again_as_not_rendered() -> None:
    block = frame_accounting(captured=100, rendered=60, stale=40, late=3, skipped={}, resized={}, examples=[], header_frames=None)
    assert block["skipped"] == {"late": 3, "stale": 40}
    assert block["skipped_total"] == 43


def test_frames_captured_but_never_rendered_after_an_abort_are_not_rendered() -> None:
    block = frame_accounting(captured=100, rendered=90, stale=4, late=0, skipped={"corrupt": 2}, resized={}, examples=[],
                             header_frames=120)
    assert block["skipped"] == {"corrupt": 2, "not_rendered": 6, "stale": 4}
    assert block["captured"] == 100 and block["rendered"] == 90 and block["header_frames"] == 120
