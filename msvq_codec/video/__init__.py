"""Video in and out: read any video-like input as 64x64 16 fps clips, write frames back out.

See :mod:`msvq_codec.video.read` and :mod:`msvq_codec.video.write` for the details.
"""

from msvq_codec.video.read import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ClipStream,
    SourceInfo,
    check_rate,
    find_inputs,
    is_frame_folder,
    iter_clips,
    iter_frames,
    probe,
    resampled_count,
    resize_frame,
    source_bytes,
)
from msvq_codec.video.write import FOURCCS, OUTPUT_KINDS, output_kind, write_video

__all__ = [
    "FOURCCS",
    "IMAGE_EXTENSIONS",
    "OUTPUT_KINDS",
    "VIDEO_EXTENSIONS",
    "ClipStream",
    "SourceInfo",
    "check_rate",
    "find_inputs",
    "is_frame_folder",
    "iter_clips",
    "iter_frames",
    "output_kind",
    "probe",
    "resampled_count",
    "resize_frame",
    "source_bytes",
    "write_video",
]
