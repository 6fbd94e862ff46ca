"""msvq: a learned video codec (MS-VQ-VAE) for 64x64, 16 fps, 32-frame clips.

Nothing runs at import time; heavy modules (torch, OpenCV) are imported by the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "decode_file", "encode_video", "info", "load_model", "read_codes", "write_codes"]


def __getattr__(name: str):
    """The codec's API, imported on first use so that ``import msvq_codec`` stays light."""
    if name == "load_model":
        from msvq_codec import codec

        return codec.load_model
    if name in ("decode_file", "encode_video", "info"):
        from msvq_codec import files

        return getattr(files, name)
    if name in ("read_codes", "write_codes", "CodeGrids"):
        from msvq_codec import codes

        return getattr(codes, name)
    raise AttributeError(name)
