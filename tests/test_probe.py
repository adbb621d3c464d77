"""The precision probe (lcnn.probe): the machine key, the cache, the verdict from timings, the accuracy guard,
the overrides, the fall-backs, ``lcnn benchmark --probe`` and predict's checked int8. Timings are injected
(a fake clock, a fake ``measure``): real ones on a shared machine are noise; the real measurement runs once,
on tiny inputs, for its shape only."""

import json
import logging
import math
import random
import re
import time

import pytest
import torch
from PIL import Image

import lcnn.probe as probe_module
from lcnn.cli import main
from lcnn.errors import UserError
from lcnn.probe import (
    FLAGS,
    KEEPS_RESULT,
    MARGIN,
    ORDER,
    checked_int8,
    choose,
    cpu_flags,
    decide,
    interleaved,
    machine_key,
    probe,
)
from lcnn.speed import default_precision
from lcnn.train import resolve_precision

#: A table as the EPYC of issue 17 measured it (2 threads, batch 256): bf16 trains 1.9x faster, int8 infers 2.5x.
EPYC = {"train": {"32-true": 1638.0, "bf16-mixed": 3068.0}, "infer": {"fp32": 5991.0, "bf16": 10611.0, "int8": 15005.0}}


@pytest.fixture(autouse=True)
def unpinned(monkeypatch, tmp_path):
    """No ``$LCNN_PRECISION`` (conftest pins it for the other tests), a cache of this test's own, no GPU."""
    monkeypatch.delenv("LCNN_PRECISION", raising=False)
    monkeypatch.setenv("LCNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(probe_module, "_MEASURED", {})


@pytest.fixture
def timings(monkeypatch):
    """``measure`` replaced by one returning ``timings.table`` (EPYC's unless changed); ``timings.calls``
    counts the measurements."""

    class Timings:
        table = EPYC
        calls = 0

    def fake(name, shape, batch, budget_s=0.3, clock=None):
        Timings.calls += 1
        table = json.loads(json.dumps(Timings.table))
        return table, {}, {candidate: 1.1 for part in table.values() for candidate in part}

    monkeypatch.setattr(probe_module, "measure", fake)
    return Timings


def _no_measuring(*args, **kwargs):
    raise AssertionError("measured, but nothing needed measuring")


def test_the_machine_key_is_stable_and_changes_with_torch_and_the_cpu(monkeypatch, timings):
    key = machine_key()
    assert key == machine_key() and key["torch"] == torch.__version__
    assert set(key) == {"cpu", "logical_cpus", "torch_threads", "torch", "capability", "flags"}
    first = probe("lcnn")["cache"]
    assert probe("lcnn")["cache"] == first and timings.calls == 1
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert machine_key()["torch"] == "9.9.9" and probe("lcnn")["cache"] != first and timings.calls == 2
    monkeypatch.setattr(probe_module, "_cpuinfo", lambda: {"model name": "Other CPU", "flags": "avx512_bf16 amx_tile"})
    key = machine_key()
    assert key["cpu"] == "Other CPU" and key["flags"] == {"avx512_bf16": True, "amx_tile": True,
                                                           "avx512_vnni": False, "avx_vnni": False}  # fmt: skip
    assert probe(model="lcnn")["cache"] != first and timings.calls == 3  # the parameter ARCHITECTURE.md names
    monkeypatch.setattr(probe_module, "_cpuinfo", lambda: {})  # no /proc/cpuinfo: torch's checks, the same keys
    monkeypatch.setattr(probe_module, "_cpu_flag", lambda name: name in ("vnni", "amx_tile"))
    assert cpu_flags() == {"avx512_bf16": False, "amx_tile": True, "avx512_vnni": True, "avx_vnni": False}
    assert tuple(cpu_flags()) == FLAGS


def test_the_table_is_measured_once_then_read_from_the_cache(monkeypatch, timings, tmp_path):
    result = probe("lcnn")
    cached = tmp_path / "cache" / "probe"
    assert [p.name for p in cached.rglob("*.json")] == ["lcnn-1x28x28.json"]
    assert (result["train"], result["infer"]) == ("bf16-mixed", "int8")  # the fastest, before the guard
    monkeypatch.setattr(probe_module, "_MEASURED", {})  # another process: reads the file
    again = probe("lcnn")
    assert again == json.loads(json.dumps(result)) and timings.calls == 1
    assert probe("lcnn", (1, 32, 32))["input_shape"] == [1, 32, 32] and timings.calls == 2  # another shape
    probe("lcnn", refresh=True)
    assert timings.calls == 3
    next(cached.rglob("lcnn-1x28x28.json")).write_text("{torn")
    monkeypatch.setattr(probe_module, "_MEASURED", {})
    probe("lcnn")
    assert timings.calls == 4  # an unreadable file is measured again, not an error


def test_a_disturbed_measurement_decides_its_run_but_is_not_cached(monkeypatch, timings, tmp_path):
    def disturbed(name, shape, batch, budget_s=0.3, clock=None):
        timings.calls += 1
        return json.loads(json.dumps(EPYC)), {}, {"32-true": 1.2, "bf16-mixed": 2.5, "fp32": 1.0}

    monkeypatch.setattr(probe_module, "measure", disturbed)
    result = probe("lcnn")
    assert result["cache"] is None and result["train"] == "bf16-mixed" and result["spread"]["bf16-mixed"] == 2.5
    assert not list((tmp_path / "cache").rglob("*.json"))
    assert probe("lcnn") is result and timings.calls == 1  # this process keeps its verdict (seeds train alike)
    monkeypatch.setattr(probe_module, "_MEASURED", {})  # a new process
    probe("lcnn")
    assert timings.calls == 2  # measures again


def test_decide_takes_a_less_exact_candidate_only_above_the_margin():
    train = ORDER["train"]
    assert decide({"32-true": 100, "bf16-mixed": 109}, train) == "32-true"
    assert decide({"32-true": 100, "bf16-mixed": 111}, train) == "bf16-mixed"
    assert decide({"32-true": 100, "bf16-mixed": 190}, train, allowed=set()) == "32-true"
    assert decide({"32-true": 100}, train) == "32-true"  # bf16 left out (could not run)
    infer = ORDER["infer"]
    assert decide({"fp32": 100, "bf16": 150, "int8": 160}, infer) == "bf16"  # int8 not 1.1x bf16
    assert decide({"fp32": 100, "bf16": 105, "int8": 120}, infer) == "int8"
    assert decide({"fp32": 100, "bf16": 150, "int8": 300}, infer, allowed={"int8"}) == "int8"
    assert decide({"fp32": 100, "bf16": 150, "int8": 300}, infer, allowed={"bf16"}) == "bf16"
    rng = random.Random(0)
    for _ in range(500):  # the pick is always within 1/MARGIN of the fastest allowed candidate
        speeds = {c: rng.uniform(1, 3) for c in infer}
        allowed = {c for c in infer[1:] if rng.random() < 0.5}
        pick = decide(speeds, infer, allowed)
        assert pick == "fp32" or pick in allowed
        assert speeds[pick] * MARGIN >= max(speeds[c] for c in ("fp32", *allowed))


def test_interleaved_keeps_each_steps_least_disturbed_run():
    """Steps of 10 and 12 ms, each slowed by 50 ms in some rounds (another process taking the core): the
    fastest run of each is its undisturbed time, and a short budget stops after MIN_ROUNDS rounds."""
    now = [0.0]
    disturbed = {"a": {0, 1}, "b": {2}}
    calls = {"a": 0, "b": 0}

    def step(name: str, seconds: float):
        def run() -> None:
            now[0] += seconds + (0.05 if calls[name] in disturbed[name] else 0.0)
            calls[name] += 1

        return run

    times = interleaved({"a": step("a", 0.010), "b": step("b", 0.012)}, 0.0, lambda: now[0])
    assert times["a"] == pytest.approx([0.010, 0.060, 0.060]) and times["b"] == pytest.approx([0.012, 0.012, 0.062])
    assert calls == {"a": 3, "b": 3}  # the fastest first: each step's undisturbed time
    calls.update(a=0, b=0)
    interleaved({"a": step("a", 0.010), "b": step("b", 0.012)}, 0.2, lambda: now[0])
    assert calls == {"a": 10, "b": 10}  # a had its 0.2 s after 10 rounds: 0.1 of disturbance + 10 x 0.01


def test_choose_follows_the_timings_only_where_the_guard_allows(monkeypatch, timings):
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"int8": "checked"})
    choice = choose("classify", "lcnn")
    assert (choice["train"], choice["infer"]) == ("32-true", "int8")  # bf16 training not accuracy-checked
    assert "bf16-mixed (1.87x 32-true)" in choice["note"]
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"int8": "checked", "bf16-mixed": "checked"})
    assert choose("classify", "lcnn")["train"] == "bf16-mixed"
    timings.table = {"train": {"32-true": 100.0, "bf16-mixed": 105.0}, "infer": {"fp32": 100.0, "int8": 108.0}}
    assert (lambda c: (c["train"], c["infer"]))(choose("classify", "lcnn", (1, 16, 16))) == ("32-true", "fp32")
    # where only fp32 is known to keep the result (spoof), nothing is measured at all
    monkeypatch.setattr(probe_module, "measure", _no_measuring)
    assert choose("spoof", "lcnn_lstm")["infer"] == "fp32" and choose("spoof", "lcnn")["train"] == "32-true"
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"int8": "checked"})
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 20, 20)) == "32-true"  # int8 known, not bf16


def test_lcnn_precision_and_precision_override_auto(monkeypatch, timings):
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked"})
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 28, 28)) == "bf16-mixed"  # measured
    assert resolve_precision("32-true", "cpu", "classify", "lcnn") == "32-true"  # --precision
    monkeypatch.setenv("LCNN_PRECISION", "16-mixed")
    monkeypatch.setattr(probe_module, "measure", _no_measuring)
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 28, 28)) == "16-mixed"
    assert resolve_precision("32-true", "cpu", "classify", "lcnn") == "32-true"  # --precision beats both
    assert choose("classify", "lcnn")["infer"] == "fp32"  # a pinned precision pins inference to fp32
    monkeypatch.setenv("LCNN_PRECISION", "bf17")
    with pytest.raises(UserError, match="LCNN_PRECISION='bf17': must be one of auto, 32-true"):
        resolve_precision("auto", "cpu", "classify", "lcnn")


def test_cuda_keeps_bf16_where_supported_without_probing(monkeypatch):
    monkeypatch.setattr(probe_module, "measure", _no_measuring)
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "auto", "classify", "lcnn") == "bf16-mixed"
    assert default_precision("cpu") == "32-true"  # CPUs are measured, never guessed
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "gpu", "classify", "lcnn") == "32-true"


def test_a_failing_probe_gives_fp32_and_one_warning_line(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("oneDNN: no kernel\nfor this")

    monkeypatch.setattr(probe_module, "measure", broken)
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked", "int8": "checked"})
    with caplog.at_level(logging.WARNING, "lcnn.probe"):
        choice = choose("classify", "lcnn")
        assert resolve_precision("auto", "cpu", "classify", "lcnn") == "32-true"
    assert (choice["train"], choice["infer"]) == ("32-true", "fp32")
    assert caplog.messages[0].startswith("lcnn: warning: the precision probe failed (RuntimeError: oneDNN")
    assert all(message.endswith("running fp32") for message in caplog.messages)


def test_measure_times_every_candidate_and_says_why_one_is_left_out(monkeypatch):
    table, skipped, spread = probe_module.measure("lcnn", (1, 16, 16), batch=4, budget_s=0.0)
    assert set(table["train"]) == {"32-true", "bf16-mixed"} and set(table["infer"]) == {"fp32", "bf16", "int8"}
    assert all(v > 0 and math.isfinite(v) for part in table.values() for v in part.values()) and not skipped
    assert set(spread) == {"32-true", "bf16-mixed", "fp32", "bf16", "int8"} and min(spread.values()) >= 1
    table, skipped, _ = probe_module.measure("lcnn_lstm", (1, 32, 16), batch=2, budget_s=0.0)
    assert set(table["infer"]) == {"fp32", "bf16"}  # int8 does not run the LSTM: left out, and said so
    assert skipped["int8"].startswith("NotImplementedError: ") and "\n" not in skipped["int8"]


def test_a_measured_probe_leaves_the_callers_random_stream_alone(monkeypatch):
    monkeypatch.setattr(probe_module, "BATCH_MACS", 1.0)  # the smallest batch (2)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    result = probe("lcnn", (1, 16, 16), budget_s=0.0)
    assert torch.equal(torch.get_rng_state(), state) and result["batch"] == 2


def test_benchmark_probe_prints_the_table_and_the_choice(monkeypatch, capsys):
    monkeypatch.setattr(probe_module, "STEADY", math.inf)  # a real, tiny measurement on a busy machine: cached
    argv = ["benchmark", "--probe", "--model", "lcnn", "--input-shape", "1", "16", "16", "--budget", "0.01"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in ("lcnn 1x16x16, batch 64", "train  32-true", "train  bf16-mixed", "infer  int8",
                 "fastest (margin 1.10x)", "chosen for spoof: train 32-true, infer fp32 (only fp32",
                 "cached in "):  # fmt: skip
        assert text in out, text
    # the guard admits bf16 training of the article's LCNN, so either is right; which depends on the CPU
    assert re.search(r"chosen for classify: train (32-true|bf16-mixed), infer ", out), out
    monkeypatch.setattr(probe_module, "measure", _no_measuring)
    monkeypatch.setattr(probe_module, "_MEASURED", {})
    assert main(argv) == 0 and capsys.readouterr().out == out  # from the cache file
    with pytest.raises(AssertionError, match="measured"):
        main([*argv, "--refresh"])
    for probing in (["--probe"], []):  # one check of the shape, before either measurement
        assert main(["benchmark", *probing, "--input-shape", "1", "28"]) == 2
        assert capsys.readouterr().err == "lcnn: error: --input-shape 1 28: expected C H W, three whole numbers of " \
            "at least 1\n"  # fmt: skip


@pytest.fixture
def digits_module(tmp_path):
    """An untrained article LCNN for 28x28 digits, and five image files."""
    from lcnn.tasks.classify.module import ClassificationModule

    torch.manual_seed(0)
    module = ClassificationModule(num_classes=10, classes=[str(d) for d in range(10)]).eval()
    files = []
    for i in range(5):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray((torch.rand(28, 28) * 255).byte().numpy()).save(files[-1])
    return module, files


def _predict(module, files, **options) -> list[str]:
    from lcnn.tasks import get_task

    return get_task("classify").predict(module, {}, files, **options)


def test_predict_runs_int8_where_chosen_and_it_agrees_with_fp32(monkeypatch, timings, digits_module):
    import copy

    module, files = digits_module
    fp32 = _predict(module, files, int8=False)
    same = copy.deepcopy(module.model)
    monkeypatch.setattr(probe_module, "quantize_int8", lambda model, calibration, run=None: same)
    assert _predict(module, files) == fp32 and module.model is same  # "int8" that agrees: kept


def test_predict_falls_back_to_fp32_when_int8_disagrees(monkeypatch, timings, digits_module, caplog):
    module, files = digits_module
    fp32 = _predict(module, files, int8=False)
    original = module.model
    monkeypatch.setattr(probe_module, "quantize_int8", lambda model, calibration, run=None: _Shifted(model))
    with caplog.at_level(logging.WARNING, "lcnn.probe"):
        assert _predict(module, files) == fp32
    assert module.model is original
    assert caplog.messages == ["lcnn: warning: int8 agrees with fp32 at 0.0000 < 0.99 on the first 5 inputs; "
                               "running fp32"]  # fmt: skip
    monkeypatch.setattr(probe_module, "choose", _no_measuring)
    assert _predict(module, files, int8=False) == fp32  # --no-int8: fp32 without asking the probe


class _Shifted(torch.nn.Module):
    """A stand-in for an int8 model that gets every class wrong: the logits rolled by one class."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).roll(1, dims=1)


def test_checked_int8_compares_embeddings_by_cosine():
    from lcnn import create_model
    from lcnn.probe import min_cosine

    torch.manual_seed(0)
    model = create_model("lcnn", num_classes=0, input_shape=(1, 16, 16)).eval()
    x = torch.rand(8, 1, 16, 16)
    int8, precision = checked_int8(model, x, x, min_cosine)
    assert precision == "int8" and int8 is not model
    with torch.inference_mode():
        assert min_cosine(model.embed(x), int8.embed(x)) >= probe_module.INT8_AGREEMENT
    assert checked_int8(model, x, x, lambda a, b: 0.5) == (model, "fp32")


def test_the_default_clock_is_cpu_time_on_one_thread_and_wall_time_on_more():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert probe_module.default_clock() is time.process_time
        torch.set_num_threads(2)
        assert probe_module.default_clock() is time.perf_counter
    finally:
        torch.set_num_threads(threads)
