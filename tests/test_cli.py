"""Tests for the ``msvq`` command line: encode / decode / info, --json, exit codes and one-line errors.

In-process through typer's CliRunner (stdout and stderr apart), plus a few real subprocesses of
``python -m msvq_codec``. The model is a tiny random-initialised one written to a temporary folder.
"""

from __future__ import annotations

import json
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
    assert info["frame_count"] == 45 and info["n_clips"] == 2 and info["codec"] == "context"  # msvq encode's default
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
        (["--quality", "high", "--codec", "zstd"], "--quality high needs codec context"),
        (["--quality", "best"], "--quality must be one of max, high, medium, low, lowest"),
        (["--effort", "-1"], "--effort must be an integer in 0..1000"),
    ):
        assert_one_line_error(run("encode", env["npy"], tmp_path / "x.msvq", "--weights", env["w"], *args), 2, fragment)
        assert_one_line_error(run("encode", folder, tmp_path / "out", "--weights", env["w"], *args), 2, fragment)
    assert not (tmp_path / "x.msvq").exists() and not (tmp_path / "out").exists()
    res = run("bench", env["npy"], "--weights", env["w"], "--no-classic", "--no-lpips", "--quality", "max,best")
    assert_one_line_error(res, 2, "--quality must be one of")
