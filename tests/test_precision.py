"""The precision policy (lcnn.precision): one table of device x part x setting -> precision, the accuracy
guard, the margin, the overrides, the fall-backs and the one int8 check of predict and serve. The probe's
timings are injected (``probe_timings``); its measuring is ``test_probe.py``'s."""

import logging
import random
from types import SimpleNamespace

import lightning
import pytest
import torch
from PIL import Image
from probe_timings import EPYC, XEON, no_measuring

import lcnn.probe as probe_module
from lcnn import create_model, precision
from lcnn.errors import UserError
from lcnn.precision import (
    KEEPS_RESULT,
    MARGIN,
    ORDER,
    check_int8,
    choose,
    decide,
    evaluate_precision,
    infer_precision,
    min_cosine,
    train_precision,
)
from lcnn.tasks.common import inference_trainer
from lcnn.train import resolve_precision

pytestmark = pytest.mark.usefixtures("unpinned")

#: The policy, for the article's LCNN on classify (the guard lists bf16 training and int8 inference) and, on
#: CPUs, the timings of two machines: (device, timings, $LCNN_PRECISION, --precision) -> train, infer, evaluate.
#: On GPUs and under a pinned or given precision nothing is measured.
POLICY = [
    ("cpu", EPYC, None, "auto", ("bf16-mixed", "int8", "fp32")),
    ("cpu", XEON, None, "auto", ("32-true", "fp32", "fp32")),
    ("cuda-bf16", None, None, "auto", ("bf16-mixed", "fp32", "fp32")),
    ("cuda", None, None, "auto", ("32-true", "fp32", "fp32")),
    ("mps", None, None, "auto", ("32-true", "fp32", "fp32")),
    ("cpu", None, "bf16-mixed", "auto", ("bf16-mixed", "fp32", "fp32")),  # pins training, inference fp32
    ("cuda-bf16", None, "32-true", "auto", ("32-true", "fp32", "fp32")),
    ("cpu", None, "bf16-mixed", "16-mixed", ("16-mixed", "fp32", "fp32")),  # --precision beats both
    ("cuda-bf16", None, None, "32-true", ("32-true", "fp32", "fp32")),
]


def on(monkeypatch, device: str) -> None:
    """Make this process see ``device``: ``cpu``, ``cuda`` (no bf16), ``cuda-bf16`` or ``mps``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: device.startswith("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: device == "cuda-bf16")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: device == "mps")


@pytest.mark.parametrize(("device", "table", "pinned", "given", "expected"), POLICY)
def test_the_policy_table(monkeypatch, timings, device, table, pinned, given, expected):
    on(monkeypatch, device)
    if pinned:
        monkeypatch.setenv("LCNN_PRECISION", pinned)
    if table is None:
        monkeypatch.setattr(probe_module, "measure", no_measuring)
    else:
        timings.table = table
    shape = (1, 28, 28)
    got = (train_precision(given, "auto", "classify", "lcnn", shape), infer_precision("classify", "lcnn", shape),
           evaluate_precision())  # fmt: skip
    assert got == expected
    assert resolve_precision is train_precision  # the public name of the training rule, the same function


def test_the_guard_decides_per_task_and_model(monkeypatch, timings):
    """On the EPYC, each (task, model) gets what its guard entries allow, and nothing is measured without one."""
    face = (train_precision("auto", "cpu", "face", "lightcnn9"), infer_precision("face", "lightcnn9"))
    assert face == ("32-true", "int8") and timings.calls == 1
    monkeypatch.setattr(probe_module, "measure", no_measuring)
    spoof = (train_precision("auto", "cpu", "spoof", "lcnn_lstm"), infer_precision("spoof", "lcnn_lstm"))
    assert spoof == ("32-true", "fp32")
    assert train_precision("auto", "cpu") == "32-true"  # no task or model: nothing to look up


def test_inference_picks_among_the_paths_the_caller_runs(monkeypatch, timings):
    """The scoring engine runs fp32 and bf16: where the guard lists both bf16 and int8 and int8 is the
    fastest, it takes bf16 (not fp32). On CUDA the guard holds for inference too; ``--accelerator cpu`` on a
    GPU machine is measured like any CPU."""
    monkeypatch.setitem(KEEPS_RESULT, ("spoof", "lcnn"), {"bf16": "checked", "int8": "checked"})
    assert infer_precision("spoof", "lcnn") == "int8"
    assert infer_precision("spoof", "lcnn", runs=("fp32", "bf16")) == "bf16"
    on(monkeypatch, "cuda-bf16")
    monkeypatch.setattr(probe_module, "measure", no_measuring)
    assert infer_precision("spoof", "lcnn") == "bf16"  # untimed on a bf16 GPU, where the guard lists it
    assert infer_precision("spoof", "lcnn", runs=("fp32",)) == "fp32"
    assert infer_precision("face", "lightcnn9") == "fp32"  # int8 runs on CPUs only
    on(monkeypatch, "cuda")
    assert infer_precision("spoof", "lcnn") == "fp32"  # no bf16 on this GPU
    monkeypatch.setattr(probe_module, "measure", timings.fake)
    assert infer_precision("spoof", "lcnn", accelerator="cpu") == "int8"  # --accelerator cpu: the CPU's rule
    assert train_precision("auto", "cpu", "classify", "lcnn") == "bf16-mixed"
    on(monkeypatch, "cuda-bf16")
    monkeypatch.setenv("LCNN_PRECISION", "bf16-mixed")
    assert infer_precision("spoof", "lcnn") == "fp32"  # pinned: inference fp32 on every device


def test_evaluate_is_fp32_with_tf32_off(monkeypatch):
    from lcnn.score.engine import ExactFP32

    def exact(trainer) -> bool:
        return any(isinstance(c, ExactFP32) for c in trainer.callbacks)

    reference = inference_trainer(accelerator="cpu")
    assert evaluate_precision() == "fp32" and exact(reference) and reference.precision == "32-true"
    bf16 = inference_trainer(accelerator="cpu", precision="bf16")
    assert not exact(bf16) and bf16.precision == "bf16-mixed"


class _Toy(lightning.LightningModule):
    """A linear layer that notes whether autocast was on in each training and test step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer, self.seen = torch.nn.Linear(4, 2), []

    def training_step(self, batch, index):
        self.seen.append(("train", torch.is_autocast_enabled("cpu")))
        return self.layer(batch[0]).float().sum()

    def test_step(self, batch, index):
        self.seen.append(("test", torch.is_autocast_enabled("cpu"), self.layer(batch[0]).dtype))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(("trained", "tested"), [("bf16-mixed", (False, torch.float32)),
                                                 ("bf16-true", (False, torch.bfloat16))])  # fmt: skip
def test_training_tests_in_evaluates_precision(tmp_path, trained, tested):
    """Training's test is an evaluation: fp32 after bf16 autocast training; a -true precision (the weights
    converted, given explicitly) stays."""
    from torch.utils.data import DataLoader, TensorDataset

    from lcnn.train import test_for_evaluation

    module, data = _Toy(), DataLoader(TensorDataset(torch.rand(8, 4)), batch_size=4)
    trainer = lightning.Trainer(max_epochs=1, precision=trained, logger=False, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(module, data)
    test_for_evaluation(trainer)
    trainer.test(module, data, verbose=False)
    assert module.seen[0] == ("train", trained.endswith("-mixed"))
    assert module.seen[-1] == ("test", *tested)


def test_the_probe_keeps_the_public_names_of_the_policy():
    assert (probe_module.choose, probe_module.KEEPS_RESULT, probe_module.MARGIN) == (choose, KEEPS_RESULT, MARGIN)
    assert probe_module.KEEPS_RESULT is KEEPS_RESULT
    with pytest.raises(AttributeError):
        probe_module.decide  # noqa: B018 - only the documented names


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
    monkeypatch.setattr(probe_module, "measure", no_measuring)
    assert choose("spoof", "lcnn_lstm")["infer"] == "fp32" and choose("spoof", "lcnn")["train"] == "32-true"
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"int8": "checked"})
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 20, 20)) == "32-true"  # int8 known, not bf16


def test_lcnn_precision_and_precision_override_auto(monkeypatch, timings):
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked"})
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 28, 28)) == "bf16-mixed"  # measured
    assert resolve_precision("32-true", "cpu", "classify", "lcnn") == "32-true"  # --precision
    monkeypatch.setenv("LCNN_PRECISION", "16-mixed")
    monkeypatch.setattr(probe_module, "measure", no_measuring)
    assert resolve_precision("auto", "cpu", "classify", "lcnn", (1, 28, 28)) == "16-mixed"
    assert resolve_precision("32-true", "cpu", "classify", "lcnn") == "32-true"  # --precision beats both
    assert choose("classify", "lcnn")["infer"] == "fp32"  # a pinned precision pins inference to fp32
    monkeypatch.setenv("LCNN_PRECISION", "bf17")
    with pytest.raises(UserError, match="LCNN_PRECISION='bf17': must be one of auto, 32-true"):
        resolve_precision("auto", "cpu", "classify", "lcnn")


def test_cuda_keeps_bf16_where_supported_without_probing(monkeypatch):
    monkeypatch.setattr(probe_module, "measure", no_measuring)
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "auto", "classify", "lcnn") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "gpu", "classify", "lcnn") == "32-true"


def test_a_failing_probe_gives_fp32_and_one_warning_line(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("oneDNN: no kernel\nfor this")

    monkeypatch.setattr(probe_module, "measure", broken)
    monkeypatch.setitem(KEEPS_RESULT, ("classify", "lcnn"), {"bf16-mixed": "checked", "int8": "checked"})
    with caplog.at_level(logging.WARNING, "lcnn"):
        choice = choose("classify", "lcnn")
        assert resolve_precision("auto", "cpu", "classify", "lcnn") == "32-true"
    assert (choice["train"], choice["infer"]) == ("32-true", "fp32")
    assert caplog.messages[0].startswith("lcnn: warning: the precision probe failed (RuntimeError: oneDNN")
    assert all(message.endswith("running fp32") for message in caplog.messages)



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
    monkeypatch.setattr(precision, "quantize_int8", lambda model, calibration, run=None: same)
    assert _predict(module, files) == fp32 and module.model is same  # "int8" that agrees: kept


def test_predict_falls_back_to_fp32_when_int8_disagrees(monkeypatch, timings, digits_module, caplog):
    module, files = digits_module
    fp32 = _predict(module, files, int8=False)
    original = module.model
    monkeypatch.setattr(precision, "quantize_int8", lambda model, calibration, run=None: _Shifted(model))
    with caplog.at_level(logging.WARNING, "lcnn"):
        assert _predict(module, files) == fp32
    assert module.model is original
    assert caplog.messages == ["lcnn: warning: int8 agreement with fp32 is 0.0000 < 0.99 on 5 inputs; "
                               "running fp32"]  # fmt: skip
    monkeypatch.setattr(precision, "choose", no_measuring)
    assert _predict(module, files, int8=False) == fp32  # --no-int8: fp32 without asking the probe


class _Shifted(torch.nn.Module):
    """A stand-in for an int8 model that gets every class wrong: the logits rolled by one class."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).roll(1, dims=1)


def test_check_int8_compares_embeddings_by_cosine(monkeypatch):
    torch.manual_seed(0)
    model = create_model("lcnn", num_classes=0, input_shape=(1, 16, 16)).eval()
    x = torch.rand(8, 1, 16, 16)
    int8, path, note = check_int8(model, x, x, min_cosine)
    assert path == "int8" and int8 is not model and note.startswith("int8 agreement with fp32 is ")
    with torch.inference_mode():
        assert min_cosine(model.embed(x), int8.embed(x)) >= precision.INT8_AGREEMENT
    assert check_int8(model, x, x, lambda a, b: 0.5) == (model, "fp32", "int8 agreement with fp32 is 0.5000 < 0.99 "
                                                                          "on 8 inputs")  # fmt: skip
    monkeypatch.setattr(torch.backends, "quantized", SimpleNamespace(supported_engines=["qnnpack", "none"]))
    assert check_int8(model, x, x, min_cosine) == (model, "fp32", "this CPU has no int8 engine (x86 / fbgemm)")




def _rows(precision="int8", runs=3, sets=("eval", "codec"), eer_shift=0.1, corr=0.9995):
    return [{"task": "spoof", "model": "m", "precision": precision, "run": f"r{r}", "set": s, "eer_fp32": 7.0,
             "eer": 7.0 + eer_shift, "correlation": corr} for r in range(runs) for s in sets]  # fmt: skip


@pytest.mark.parametrize("rows, keeps", [
    (_rows(), True),
    (_rows(eer_shift=-0.2), False),            # 0.2 points is not less than 0.2
    (_rows(corr=0.9989), False),
    (_rows(runs=2), False),                     # three trained runs
    (_rows(sets=("eval",)), False),             # clean and degraded
    ([], False),
])  # fmt: skip
def test_the_scoring_rule(rows, keeps):
    from lcnn.precision import scoring_verdict

    assert scoring_verdict(rows)[0] is keeps


def test_the_guard_takes_inference_precisions_from_the_evidence_file(tmp_path, monkeypatch):
    """Only a precision whose rows pass the rule is listed; training precisions are not touched."""
    import json

    from lcnn import precision

    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps(_rows("int8") + _rows("bf16", corr=0.99)))
    monkeypatch.setattr(precision, "EVIDENCE_FILE", evidence)
    assert list(precision._measured()) == [("spoof", "m")]
    assert set(precision._measured()[("spoof", "m")]) == {"int8"}


def test_the_shipped_evidence_and_what_it_decides():
    """issue 27's measurement (benchmarks/precision_evidence.py --write): 3 runs x 2 sets for bf16 and int8; by
    the rule neither is lcnn_lstm's scoring default (bf16 moved the codec EER by 0.3 points, int8 by 0.2)."""
    import json

    from lcnn import precision

    rows = json.loads(precision.EVIDENCE_FILE.read_text())
    lstm = [r for r in rows if (r["task"], r["model"]) == ("spoof", "lcnn_lstm")]
    assert len(lstm) == 12 and {r["precision"] for r in lstm} == {"bf16", "int8"}
    assert all(r["correlation"] >= 0.999 for r in lstm)
    assert not {"bf16", "int8"} & set(precision.KEEPS_RESULT.get(("spoof", "lcnn_lstm"), {}))
