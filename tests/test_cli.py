"""Tests for the ``msvq`` command line: encode / decode / info, --json, exit codes and one-line errors.

In-process through typer's CliRunner (stdout and stderr apart), plus a few real subprocesses of
``python -m msvq_codec``. The model is a tiny random-initialised one written to a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from msvq_codec import __version__
from msvq_codec.cli import app
from msvq_codec.model.weights import load_weights
from tinymodel import make_tiny_weights

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Weights, other weights, a 45-frame 40x56 .npy input and its .msvq."""
    d = tmp_path_factory.mktemp("cli")
    w = make_tiny_weights(d / "tiny.safetensors")
    other = make_tiny_weights(d / "other.safetensors", seed=3)
    rng = np.random.default_rng(0)
    np.save(d / "in.npy", rng.integers(0, 256, (45, 40, 56, 3), dtype=np.uint8))
    res = runner.invoke(app, ["encode", str(d / "in.npy"), str(d / "in.msvq"), "--weights", str(w)])
    assert res.exit_code == 0, res.output
    return {"dir": d, "w": str(w), "other": str(other), "npy": str(d / "in.npy"), "msvq": str(d / "in.msvq")}


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(res, code: int, *fragments: str) -> str:
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---- happy paths -----------------------------------------------------------------------------------------------


def test_version_names_the_weights_a_command_would_use(env, monkeypatch):
    from msvq_codec.model.weights import SHIPPED_NAME, find_weights, shipped_dir

    monkeypatch.delenv("MSVQ_WEIGHTS", raising=False)
    res = run("--version")
    version, weights = res.stdout.strip().splitlines()
    assert res.exit_code == 0 and version == f"msvq {__version__}"
    shipped = shipped_dir() / SHIPPED_NAME
    assert find_weights() == (shipped, "shipped") and f"weights: {shipped} (the copy shipped with msvq)" in weights
    if shipped.is_file():
        assert f"model ID {load_weights(shipped).model_id.hex()}" in weights
    monkeypatch.setenv("MSVQ_WEIGHTS", env["w"])  # the environment comes before the shipped copy
    weights = run("--version").stdout.strip().splitlines()[1]
    assert f"{env['w']} (from $MSVQ_WEIGHTS), model ID {load_weights(env['w']).model_id.hex()}" in weights
    assert find_weights(env["other"]) == (Path(env["other"]), "given")  # and --weights before both


def test_help_lists_commands():
    res = run("--help")
    assert res.exit_code == 0
    for command in ("encode", "decode", "info"):
        assert command in res.stdout


def test_encode_decode_info(tmp_path, env):
    out = tmp_path / "a.msvq"
    res = run("encode", env["npy"], out, "--weights", env["w"], "--device", "cpu", "--codec", "deflate", "--level", "6")
    assert res.exit_code == 0, res.output
    assert "encoded" in res.stdout and "45 frames" in res.stdout
    res = run("info", out)
    assert res.exit_code == 0 and "deflate" in res.stdout and load_weights(env["w"]).model_id.hex() in res.stdout
    res = run("decode", out, tmp_path / "r.npy", "-w", env["w"], "--size", "source")
    assert res.exit_code == 0, res.output
    assert "45 frames" in res.stdout and "56x40" in res.stdout
    assert np.load(tmp_path / "r.npy").shape == (45, 40, 56, 3)


def test_json_outputs(tmp_path, env):
    res = run("encode", env["npy"], tmp_path / "j.msvq", "-w", env["w"], "--json", "--batch-size", "1")
    assert res.exit_code == 0, res.output
    enc = json.loads(res.stdout)
    assert enc["status"] == "ok" and enc["frames"] == 45 and enc["clips"] == 2
    assert enc["bytes"] == (tmp_path / "j.msvq").stat().st_size
    assert (tmp_path / "j.msvq").read_bytes() == Path(env["msvq"]).read_bytes()  # batch size changes nothing

    res = run("info", tmp_path / "j.msvq", "--json")
    assert res.exit_code == 0
    info = json.loads(res.stdout)
    assert info["frame_count"] == 45 and info["n_clips"] == 2 and info["codec"] == "prior"  # msvq encode's default
    assert info["bytes"] == enc["bytes"] and [lv["codebook_size"] for lv in info["levels"]] == [32, 32]
    assert (info["source_width"], info["source_height"]) == (56, 40)

    res = run("decode", tmp_path / "j.msvq", tmp_path / "j.avi", "-w", env["w"], "--json", "--fps", "25",
              "--size", "32x32")  # fmt: skip
    assert res.exit_code == 0, res.output
    dec = json.loads(res.stdout)
    assert (dec["status"], dec["frames"], dec["width"], dec["height"]) == ("ok", 45, 32, 32)


def test_decode_to_png_folder_and_force(tmp_path, env):
    res = run("decode", env["msvq"], tmp_path / "pngs", "-w", env["w"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 45
    res = run("decode", env["msvq"], tmp_path / "pngs", "-w", env["w"])
    assert_one_line_error(res, 1, "exists", "--force")
    res = run("decode", env["msvq"], tmp_path / "pngs", "-w", env["w"], "--force")
    assert res.exit_code == 0


def test_encode_into_existing_folder(tmp_path, env):
    res = run("encode", env["npy"], tmp_path, "-w", env["w"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "in.msvq").is_file()


def test_skip_existing_single_file(tmp_path, env):
    out = tmp_path / "s.msvq"
    out.write_bytes(b"keep")
    res = run("encode", env["npy"], out, "-w", env["w"], "--skip-existing", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "skipped"
    assert out.read_bytes() == b"keep"


def test_quiet_prints_no_progress(tmp_path, env):
    res = run("--quiet", "encode", env["npy"], tmp_path / "q.msvq", "-w", env["w"])
    assert res.exit_code == 0 and res.stderr == ""


# ---- errors: exit codes and one line --------------------------------------------------------------------------


def test_missing_input(tmp_path, env):
    res = run("encode", tmp_path / "nope.avi", tmp_path / "x.msvq", "-w", env["w"])
    assert_one_line_error(res, 1, "nope.avi")
    res = run("decode", tmp_path / "nope.msvq", tmp_path / "x.mp4", "-w", env["w"])
    assert_one_line_error(res, 1, "nope.msvq")
    res = run("info", tmp_path / "nope.msvq")
    assert_one_line_error(res, 1, "nope.msvq")


def test_not_a_video(tmp_path, env):
    bad = tmp_path / "bad.mp4"
    bad.write_text("hello, I am text\n")
    res = run("encode", bad, tmp_path / "x.msvq", "-w", env["w"])
    assert_one_line_error(res, 1, "bad.mp4")
    assert not (tmp_path / "x.msvq").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "text"])
def test_corrupt_msvq(tmp_path, env, damage):
    data = Path(env["msvq"]).read_bytes()
    bad = tmp_path / "bad.msvq"
    if damage == "truncate":
        bad.write_bytes(data[:-20])
    elif damage == "flip":
        bad.write_bytes(data[:50] + bytes([data[50] ^ 1]) + data[51:])
    else:
        bad.write_text("not msvq")
    res = run("decode", bad, tmp_path / "r.mp4", "-w", env["w"])
    assert_one_line_error(res, 1, "bad.msvq")
    assert not (tmp_path / "r.mp4").exists()
    assert_one_line_error(run("info", bad), 1, "bad.msvq")
    assert_one_line_error(run("info", bad, "--json"), 1)


def test_wrong_weights(tmp_path, env):
    res = run("decode", env["msvq"], tmp_path / "r.mp4", "-w", env["other"])
    line = assert_one_line_error(res, 1, "--weights")
    assert load_weights(env["w"]).model_id.hex() in line and load_weights(env["other"]).model_id.hex() in line
    assert not (tmp_path / "r.mp4").exists()


def test_missing_weights(tmp_path, env, monkeypatch):
    res = run("encode", env["npy"], tmp_path / "x.msvq", "-w", tmp_path / "none.safetensors")
    assert_one_line_error(res, 1, "none.safetensors", "--weights", "msvq train")
    monkeypatch.setenv("MSVQ_WEIGHTS", str(tmp_path / "env.safetensors"))  # the default comes from here
    res = run("decode", env["msvq"], tmp_path / "x.mp4")
    assert_one_line_error(res, 1, "env.safetensors")


def test_existing_output_without_force(tmp_path, env):
    out = tmp_path / "x.msvq"
    out.write_bytes(b"old")
    assert_one_line_error(run("encode", env["npy"], out, "-w", env["w"]), 1, "--force")
    assert out.read_bytes() == b"old"
    res = run("encode", env["npy"], out, "-w", env["w"], "--force")
    assert res.exit_code == 0 and out.read_bytes() == Path(env["msvq"]).read_bytes()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["encode", "{npy}", "{o}.msvq", "--codec", "lzma"], "--codec"),
        (["encode", "{npy}", "{o}.msvq", "--level", "99"], "--level"),
        (["encode", "{npy}", "{o}.msvq", "--device", "tpu"], "--device"),
        (["encode", "{npy}", "{o}.msvq", "--batch-size", "0"], "--batch-size"),
        (["encode", "{npy}", "{o}.msvq", "--input-fps", "0"], "--input-fps"),
        (["encode", "{npy}", "{o}.msvq", "--shard", "3/2"], "--shard"),
        (["encode", "{npy}", "{o}.msvq", "--shard", "0/2"], "folder inputs"),
        (["encode", "{dir}", "{o}", "--jobs", "0"], "--jobs"),
        (["encode", "{dir}", "{o}", "--shard", "x"], "--shard"),
        (["encode", "{dir}", "{o}", "--skip-existing", "--force"], "--skip-existing"),
        (["encode", "{npy}", "{o}.msvq", "--skip-existing", "--force"], "--skip-existing"),
        (["decode", "{msvq}", "{o}.mp4", "--size", "foo"], "--size"),
        (["decode", "{msvq}", "{o}.mp4", "--size", "0x10"], "--size"),
        (["decode", "{msvq}", "{o}.mp4", "--fps", "-1"], "--fps"),
        (["decode", "{msvq}", "{o}.gif"], ".gif"),
        (["decode", "{msvq}", "{o}.mp4", "--ext", "avi"], "--ext"),
        (["decode", "{dir}", "{o}", "--ext", "gif"], "--ext"),
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path, env, args, fragment):
    fill = {"npy": env["npy"], "msvq": env["msvq"], "dir": str(env["dir"]), "o": str(tmp_path / "out")}
    res = run(*[a.format(**fill) for a in args], "-w", env["w"])
    assert_one_line_error(res, 2, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [["encode"], ["encode", "a.avi"], ["decode", "x.msvq", "y.mp4", "--jobs", "many"], ["info"], ["nosuchcommand"],
     ["encode", "a", "b", "--no-such-option"]],
)  # fmt: skip
def test_typer_usage_errors_exit_2(args):
    res = run(*args)
    assert res.exit_code == 2
    assert "Traceback" not in res.stderr


# ---- real processes ----------------------------------------------------------------------------------------------


def python_m(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "msvq_codec", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_subprocess_version_and_errors(tmp_path, env):
    res = python_m("--version")
    assert res.returncode == 0 and res.stdout.splitlines()[0] == f"msvq {__version__}"
    bad = tmp_path / "bad.msvq"
    bad.write_bytes(b"\x89MSVQ\r\n\x1a" + b"\0" * 30)
    res = python_m("decode", bad, tmp_path / "r.mp4", "-w", env["w"], "--codec-typo")  # typer's own usage error
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = python_m("decode", bad, tmp_path / "r.mp4", "-w", env["w"])
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_debug_lets_the_exception_through(tmp_path):
    from msvq_codec.errors import FormatError

    bad = tmp_path / "bad.msvq"
    bad.write_bytes(b"junk")
    res = run("--debug", "info", bad)
    assert res.exit_code == 1 and isinstance(res.exception, FormatError)


# ---- the CLI's place: it speaks of flags, the library of values; nothing imports it ------------------------


def test_library_errors_are_told_with_the_commands_flags():
    from msvq_codec.cli import describe
    from msvq_codec.errors import InputError, OutputExists, UsageError, WeightsError, WeightsMismatch

    bad_batch = UsageError("batch_size must be a positive integer, not 0", option="batch_size")
    assert describe(bad_batch) == "--batch-size must be a positive integer, not 0"
    assert describe(OutputExists("x.msvq exists", option="force")) == "x.msvq exists (use --force to overwrite)"
    assert "msvq train" in describe(WeightsError("no weights at w.safetensors", option="weights"))
    assert describe(WeightsMismatch("made by model 01", option="weights")) == "made by model 01 (--weights)"
    assert describe(InputError("no such file: x")) == "no such file: x"


def test_nothing_but_main_imports_the_cli():
    package = Path(__file__).resolve().parent.parent / "msvq_codec"
    importers = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py")
        if "msvq_codec.cli" in path.read_text() or "from msvq_codec import cli" in path.read_text()
    )  # fmt: skip
    assert importers == ["__main__.py"]


def test_train_cpu_recipe_then_a_new_phase_then_export(tmp_path):
    """--recipe cpu with an override, a perceptual-free new phase from its checkpoint, and both exports."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        np.save(data / f"v{i}.npy", rng.integers(0, 256, (40, 48, 48, 3), dtype=np.uint8))
    (data / "val.txt").write_text("v1.npy\n")
    common = ["--data", data, "--val-list", data / "val.txt", "--config", "tiny", "--device", "cpu",
              "--cache-dir", tmp_path / "cache", "--batch-size", "1"]  # fmt: skip
    res = run("--quiet", "train", *common, "--recipe", "cpu", "--max-steps", "2", "--run-dir", tmp_path / "a")
    assert res.exit_code == 0, res.output
    first = tmp_path / "a" / "last.pt"
    res = run("--quiet", "train", *common, "--init-from", first, "--lr", "1e-4", "--max-steps", "1",
              "--run-dir", tmp_path / "b")  # fmt: skip
    assert res.exit_code == 0, res.output
    from msvq_codec.train.checkpoint import load_checkpoint

    res = run("--quiet", "train", *common, "--init-from", first, "--codebook-size", "16", "--latent-norm",
              "--max-steps", "1", "--run-dir", tmp_path / "c")  # fmt: skip
    assert res.exit_code == 2 and "another model than the one asked for (codebook_size, latent_norm)" in res.output
    assert not (tmp_path / "c").exists()  # refused before anything is written
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    assert ckpt["step"] == 3 and json.loads(ckpt["train_config"])["lr"] == 1e-4
    assert json.loads(ckpt["train_config"])["schedule"] == "cosine"  # the new phase's recipe: paper + overrides
    res = run("export", tmp_path / "a" / "last.pt", tmp_path / "avg.safetensors")
    assert res.exit_code == 0, res.output
    res = run("export", tmp_path / "a" / "last.pt", tmp_path / "raw.safetensors", "--raw")
    assert res.exit_code == 0, res.output
    assert load_weights(tmp_path / "avg.safetensors").metadata["weights"] == "weight average"
    assert load_weights(tmp_path / "raw.safetensors").metadata["weights"] == "raw"


def test_train_unknown_recipe_is_a_one_line_usage_error(tmp_path):
    res = run("train", "--data", tmp_path, "--recipe", "fast")
    assert_one_line_error(res, 2, "recipe")


# ---- rate control ---------------------------------------------------------------------------------------------


def test_encode_quality_is_in_the_header_and_info_names_it(env, tmp_path):
    out = tmp_path / "low.msvq"
    res = run("encode", env["npy"], out, "--weights", env["w"], "--quality", "low")
    assert res.exit_code == 0, res.output
    assert out.stat().st_size < Path(env["msvq"]).stat().st_size  # max, the default, spends more
    shown = run("info", out)
    assert shown.exit_code == 0 and "quality_preset" in shown.stdout and "low" in shown.stdout
    data = json.loads(run("info", out, "--json").stdout)
    assert data["quality"] == 3 and data["quality_preset"] == "low" and data["rd_lambda"] > 0
    assert json.loads(run("info", env["msvq"], "--json").stdout)["quality_preset"] == "max"
    decoded = run("decode", out, tmp_path / "low.npy", "--weights", env["w"])
    assert decoded.exit_code == 0 and np.load(tmp_path / "low.npy").shape == (45, 64, 64, 3)


def test_rate_control_usage_errors_are_one_line(env, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", np.load(env["npy"]))
    for args, fragment in (
        (["--quality", "high", "--codec", "zstd"], "--quality high needs codec prior or context"),
        (["--quality", "best"], "--quality must be one of max, high, medium, low, lowest"),
        (["--effort", "-1"], "--effort must be an integer in 0..1000"),
    ):
        assert_one_line_error(run("encode", env["npy"], tmp_path / "x.msvq", "--weights", env["w"], *args), 2, fragment)
        assert_one_line_error(run("encode", folder, tmp_path / "out", "--weights", env["w"], *args), 2, fragment)
    assert not (tmp_path / "x.msvq").exists() and not (tmp_path / "out").exists()
    res = run("bench", env["npy"], "--weights", env["w"], "--no-classic", "--no-lpips", "--quality", "max,best")
    assert_one_line_error(res, 2, "--quality must be one of")


# ---- pipes: - for stdin and stdout, real processes -------------------------------------------------------------

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
MSVQ = [sys.executable, "-m", "msvq_codec"]


def piped(args: list, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([*MSVQ, *map(str, args)], input=stdin, capture_output=True, timeout=300)


def one_error_line(res: subprocess.CompletedProcess, *fragments: str) -> None:
    text = res.stderr.decode()
    assert res.returncode == 1 and text.startswith("error: ") and text.count("\n") == 1, text
    assert "Traceback" not in text and all(f in text for f in fragments), text


@pytest.fixture(scope="module")
def y4m(env) -> Path:
    """A 50-frame 25 fps y4m that ffmpeg wrote (its testsrc2 pattern, 80x60)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    path = env["dir"] / "src.y4m"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=80x60:rate=25",
                    "-frames:v", "50", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", path], check=True)  # fmt: skip
    return path


@needs_ffmpeg
def test_stdin_and_a_y4m_file_write_the_same_bytes(env, y4m, tmp_path):
    res = piped(["encode", "-", tmp_path / "a.msvq", "-w", env["w"], "--json"], y4m.read_bytes())
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # the output is a file: the report stays on stdout
    assert report["input"] == "-" and report["frames"] == 32 and report["source_bytes"] == y4m.stat().st_size
    assert piped(["encode", y4m, tmp_path / "b.msvq", "-w", env["w"]]).returncode == 0
    assert (tmp_path / "a.msvq").read_bytes() == (tmp_path / "b.msvq").read_bytes()
    ffmpeg = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-i", y4m, "-f", "yuv4mpegpipe", "-"],
                              stdout=subprocess.PIPE)  # fmt: skip
    res = subprocess.run([*MSVQ, "encode", "-", "-", "-w", env["w"]], stdin=ffmpeg.stdout, capture_output=True,
                         timeout=300)  # fmt: skip
    ffmpeg.stdout.close()
    assert ffmpeg.wait() == 0 and res.returncode == 0, res.stderr
    assert res.stdout == (tmp_path / "a.msvq").read_bytes()  # the file's bytes on stdout, nothing else
    assert res.stderr.decode().startswith("encoded - -> -: 32 frames")  # the report went to stderr


@needs_ffmpeg
def test_decode_reads_stdin_and_writes_y4m_that_ffmpeg_reads(env, tmp_path):
    data = Path(env["msvq"]).read_bytes()
    res = piped(["decode", "-", tmp_path / "r.npy", "-w", env["w"]], data)
    assert res.returncode == 0, res.stderr
    exact = np.load(tmp_path / "r.npy")
    res = piped(["decode", "-", "-", "-w", env["w"], "--json"], data)
    assert res.returncode == 0 and res.stdout.startswith(b"YUV4MPEG2 W64 H64 F16:1 ")
    assert json.loads(res.stderr)["frames"] == 45  # stdout carries the video: the JSON record goes to stderr
    back = subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "yuv4mpegpipe", "-i", "-", "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], input=res.stdout, capture_output=True, check=True).stdout
    frames = np.frombuffer(back, np.uint8).reshape(-1, 64, 64, 3)
    assert frames.shape[0] == 45
    err = frames.astype(float) - exact
    assert 10 * np.log10(255**2 / np.mean(err**2)) > 30  # 4:2:0 chroma and rounding only
    res = piped(["decode", "-", "-", "-w", env["w"], "--size", "32x24", "--fps", "25"], data)
    assert res.stdout.startswith(b"YUV4MPEG2 W32 H24 F25:1 ")


def test_a_closed_pipe_is_one_error_line(env):
    proc = subprocess.Popen([*MSVQ, "decode", env["msvq"], "-", "-w", env["w"]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.read(100)
    proc.stdout.close()  # the reader goes away after 100 bytes, as `| head -c 100` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1 and stderr == "error: standard output was closed by the program reading it\n"


@needs_ffmpeg
def test_bad_y4m_on_stdin_is_one_error_line_and_writes_nothing(env, y4m, tmp_path):
    whole = y4m.read_bytes()
    cases = [
        (whole[:-100], "ends in the middle of frame 49"),
        (whole.replace(b" Ip ", b" It ", 1), "interlaced"),
        (whole.replace(b"C420jpeg", b"C420p10", 1), "C420p10"),
        (b"", "empty"),
        (b"RIFF1234AVI LIST", "not a YUV4MPEG2"),
    ]
    for data, fragment in cases:
        one_error_line(piped(["encode", "-", tmp_path / "x.msvq", "-w", env["w"]], data), fragment)
        assert not list(tmp_path.iterdir())
    one_error_line(piped(["decode", "-", tmp_path / "x.mp4", "-w", env["w"]], b"junk"), "standard input")
    res = piped(["encode", "-", tmp_path, "-w", env["w"]], whole)  # a folder needs a name
    assert res.returncode == 2 and "standard input has no name" in res.stderr.decode()
    assert not list(tmp_path.iterdir())


@needs_ffmpeg
def test_target_rates_for_a_file_a_pipe_and_a_folder(env, y4m, tmp_path):
    top = json.loads(piped(["encode", y4m, tmp_path / "max.msvq", "-w", env["w"], "--json"]).stdout)["file_bpp"]
    goal = 0.7 * top
    res = piped(["encode", "-", "-", "-w", env["w"], "--target-bpp", goal], y4m.read_bytes())
    assert res.returncode == 0, res.stderr
    bits = len(res.stdout) * 8 / (32 * 64 * 64)
    assert abs(bits - goal) <= 0.05 * goal
    kbps = goal * 16 * 64 * 64 / 1000
    res = piped(["encode", y4m, tmp_path / "k.msvq", "-w", env["w"], "--target-kbps", kbps, "--json"])
    record = json.loads(res.stdout)
    assert record["quality"] == "target" and abs(record["kbps"] - kbps) <= 0.05 * kbps
    info = json.loads(piped(["info", tmp_path / "k.msvq", "--json"]).stdout)
    assert info["quality_preset"] == "target" and info["rd_lambda"] == pytest.approx(record["rd_lambda"])
    assert info["kbps"] == pytest.approx(record["kbps"])
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(y4m, tmp_path / "in" / "sub" / "v.y4m")
    np.save(tmp_path / "in" / "n.npy", np.load(env["npy"]))
    res = piped(["encode", tmp_path / "in", tmp_path / "out", "-w", env["w"], "--target-bpp", 10 * top, "--json"])
    summary = json.loads(res.stdout)
    assert res.returncode == 0 and summary["ok"] == 2 and summary["ratio_raw"] > 1
    assert all(f["note"] and "above what quality max spends" in f["note"] for f in summary["files"])
    assert "above what quality max spends" in res.stderr.decode()
    one_error_line(piped(["encode", y4m, tmp_path / "low.msvq", "-w", env["w"], "--target-kbps", 0.001]),
                   "is below what these codes can reach", "kbps to")  # fmt: skip


def test_encode_reports_bpp_and_compression_ratios(env, tmp_path):
    res = run("encode", env["npy"], tmp_path / "r.msvq", "-w", env["w"], "--json")
    rec = json.loads(res.stdout)
    size = (tmp_path / "r.msvq").stat().st_size
    assert rec["source_bytes"] == Path(env["npy"]).stat().st_size and rec["bytes"] == size
    assert rec["ratio_source"] == pytest.approx(rec["source_bytes"] / size)
    assert rec["ratio_raw"] == pytest.approx(45 * 64 * 64 * 3 / size)
    assert rec["file_bpp"] == pytest.approx(size * 8 / (45 * 64 * 64))
    res = run("encode", env["npy"], tmp_path / "t.msvq", "-w", env["w"])
    assert f"{rec['file_bpp']:.4f} bpp" in res.stdout and f"{rec['ratio_raw']:.1f}:1 to raw 64x64 RGB" in res.stdout
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        shutil.copy(env["npy"], tmp_path / "in" / f"{name}.npy")
    res = run("encode", tmp_path / "in", tmp_path / "out", "-w", env["w"])
    assert res.exit_code == 0 and ":1 to raw 64x64 RGB" in res.stdout.splitlines()[-1]
    summary = json.loads(run("encode", tmp_path / "in", tmp_path / "out2", "-w", env["w"], "--json").stdout)
    assert summary["bytes"] == 2 * size and summary["ratio_raw"] == pytest.approx(2 * 45 * 64 * 64 * 3 / (2 * size))
    assert summary["ratio_source"] == pytest.approx(rec["ratio_source"])
