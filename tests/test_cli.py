"""The command line end to end on the bundled digits: train, evaluate, predict, export, and bad input."""

import copy
import csv
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lcnn.cli import build_parser, main
from lcnn.data.images import load_digits
from lcnn.tasks import load_task


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    assert main(["train", "--epochs", "2", "--batch-size", "64", "--val-fraction", "0.25", "--out", str(out)]) == 0
    return out


def test_train_writes_the_run_folder(run):
    for name in ("config.json", "metrics.json", "metrics.csv", "curves.png", "checkpoints/best.ckpt",
                 "checkpoints/last.ckpt"):
        assert (run / name).stat().st_size > 0, name
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == "digits" and config["batch_size"] == 64 and config["epochs"] == 2
    assert config["val_fraction"] == 0.25
    metrics = json.loads((run / "metrics.json").read_text())
    # learning is asserted elsewhere: test_runs.py (test_acc > 0.5 after 4 epochs), test_lcnn_model.py (the loss
    # halves); this 2-epoch run is about the run folder
    assert metrics["test_count"] == 450 and 0 <= metrics["test_acc"] <= 1
    assert not list(run.rglob("*.tmp"))


def test_evaluate_reproduces_the_test_accuracy(run, capsys):
    assert main(["evaluate", str(run), "--out", str(run / "eval")]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(trained["test_acc"], abs=1e-6)
    assert set(metrics["per_class_acc"]) == {str(d) for d in range(10)}
    assert (run / "eval" / "confusion.png").stat().st_size > 0
    assert main(["evaluate", str(run), "--test-time-flip", "--out", str(run / "eval-flip")]) == 0
    flipped = json.loads((run / "eval-flip" / "metrics.json").read_text())
    assert (metrics["test_time_flip"], flipped["test_time_flip"]) == (False, True)
    assert flipped["test_loss"] != pytest.approx(metrics["test_loss"], abs=1e-4)


def test_predict_prints_class_and_probability(run, tmp_path, capsys):
    digits = load_digits()
    paths = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(digits.test_images[i, 0].numpy()).save(path)
        paths.append(str(path))
    capsys.readouterr()
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    # the fp32 model's own softmax, computed here from the checkpoint (tests pin predict to fp32)
    module = load_task(run / "checkpoints" / "best.ckpt")[0]
    images = torch.stack([torch.from_numpy(digits.test_images[i].numpy()).float() / 255 for i in range(3)])
    with torch.inference_mode():
        fp32 = module.model.eval()(images).softmax(1)
    for line, path, p in zip(lines, paths, fp32):
        name, label, prob = line.split("\t")
        assert name == path and int(label) == int(p.argmax()) and float(prob) == pytest.approx(float(p.max()), abs=5e-5)
    # --int8 against fp32: the same class, the probability within 0.05 (this 2-epoch model is unsure of its
    # classes; the accuracy of int8 is benchmarks/int8_accuracy.py's job)
    assert main(["predict", str(run / "checkpoints" / "best.ckpt"), *paths, "--int8"]) == 0
    for line, p in zip(capsys.readouterr().out.strip().splitlines(), fp32):
        name, label, prob = line.split("\t")
        assert int(label) == int(p.argmax()) and float(prob) == pytest.approx(float(p.max()), abs=0.05)


def test_export_onnx_matches_pytorch_on_new_inputs(run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from lcnn.tasks import load_task

    path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(path)]) == 0
    module, _, _ = load_task(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(7, 1, 28, 28)
    with torch.inference_mode():
        expected = module.model(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4, rtol=0)


def test_export_torchscript_and_safetensors(run, tmp_path):
    from safetensors.torch import load_file

    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    module = load_task(run)[0]
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        expected = module.model.eval()(x)
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-5)  # the same fp32 graph
    assert main(["export", str(run), "--format", "safetensors", "--out", str(tmp_path / "m.safetensors")]) == 0
    tensors = load_file(str(tmp_path / "m.safetensors"))
    weights = module.model.state_dict()
    assert tensors.keys() == weights.keys() and "fc.filter.weight" in tensors
    assert all(torch.equal(tensors[k], weights[k]) for k in weights)  # bit for bit
    rebuilt = copy.deepcopy(module.model)
    for param in rebuilt.parameters():
        param.data.normal_()
    rebuilt.load_state_dict(tensors)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), expected, rtol=0, atol=0)  # the values are the model's


def _error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcnn: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_user_errors_are_one_line(run, tmp_path, capsys):
    ckpt = str(run / "checkpoints" / "best.ckpt")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert "bad.png: cannot read image" in _error(capsys, ["predict", ckpt, str(bad)])
    big = tmp_path / "big.png"
    Image.new("L", (32, 30)).save(big)
    assert "big.png: images are 1x30x32, the model expects 1x28x28" in _error(capsys, ["predict", ckpt, str(big)])
    assert "missing MNIST file" in _error(capsys, ["evaluate", ckpt, "--data", "mnist", "--data-dir", str(tmp_path)])
    assert "no such data folder" in _error(capsys, ["train", "--data", f"folder:{tmp_path}/nope", "--out",
                                                   str(tmp_path / "r")])
    assert "--val-fraction is not an option of the spoof task (classify, face take it)" in _error(
        capsys, ["train", "--task", "spoof", "--val-fraction", "0.1", "--out", str(tmp_path / "s")])
    notckpt = tmp_path / "x.ckpt"
    notckpt.write_text("hello")
    assert "x.ckpt: not a PyTorch checkpoint" in _error(capsys, ["evaluate", str(notckpt)])
    assert "no such checkpoint" in _error(capsys, ["predict", str(tmp_path / "none.ckpt"), str(big)])


def test_checkpoint_of_another_architecture_is_refused(run, tmp_path, capsys):
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["input_shape"] = (3, 32, 32)  # claims RGB 32x32: the weights cannot fit
    torch.save(ckpt, tmp_path / "other.ckpt")
    err = _error(capsys, ["evaluate", str(tmp_path / "other.ckpt")])
    assert "other.ckpt: weights do not fit" in err and "size mismatch" in err
    ckpt["state_dict"]["model.extra.weight"] = torch.zeros(1)
    ckpt["hyper_parameters"]["input_shape"] = (1, 28, 28)
    torch.save(ckpt, tmp_path / "extra.ckpt")
    assert "unexpected ['model.extra.weight']" in _error(capsys, ["evaluate", str(tmp_path / "extra.ckpt")])
    cifar_like = tmp_path / "rgb"
    for split in ("train", "test"):
        for label in ("a", "b"):
            (cifar_like / split / label).mkdir(parents=True)
            Image.new("RGB", (32, 32), (10, 20, 30)).save(cifar_like / split / label / "0.png")
    err = _error(capsys, ["evaluate", str(run), "--data", f"folder:{cifar_like}"])
    assert "images are 3x32x32, the model expects 1x28x28" in err
    twelve = tmp_path / "twelve"  # digits' size, but twelve classes: the model knows ten
    for split in ("train", "test"):
        for label in [*map(str, range(10)), "x", "y"]:
            (twelve / split / label).mkdir(parents=True)
            Image.new("L", (28, 28), 128).save(twelve / split / label / "0.png")
    err = _error(capsys, ["evaluate", str(run), "--data", f"folder:{twelve}"])
    assert "its classes (12: x, y...) are not the model's (10: 0, 1, 2...)" in err


def test_several_seeds_write_a_summary(tmp_path):
    out = tmp_path / "seeds"
    argv = ["train", "--epochs", "1", "--batch-size", "128", "--seed", "1", "--seed", "2", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    accs = [json.loads((out / f"seed-{s}" / "metrics.json").read_text())["test_acc"] for s in (1, 2)]
    assert summary["seeds"] == [1, 2]
    assert summary["mean"]["test_acc"] == pytest.approx(np.mean(accs))
    assert summary["std"]["test_acc"] == pytest.approx(np.std(accs, ddof=1))


def test_resume_continues_from_last_checkpoint(tmp_path):
    out = tmp_path / "resumed"
    assert main(["train", "--epochs", "1", "--batch-size", "128", "--out", str(out)]) == 0
    assert main(["train", "--epochs", "2", "--batch-size", "128", "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_trained"] == 2
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 * 9  # 1,078 training digits in batches of 128: 9 steps an epoch
    with open(out / "metrics.csv") as f:
        logged = {int(row["epoch"]) for row in csv.DictReader(f) if row["val_acc"]}
    assert logged == {0, 1}  # the first epoch's log survives the resume


def _fit_scripted(tmp_path, logs: dict[str, list[float]], patience: int, monitor, best_by=None):
    """Train a 2-weight module whose validation logs ``logs[name][epoch]``, with ``build_trainer``'s checkpoints
    and early stopping, for as many epochs as the logs have (or until early stopping). Returns the trainer."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from lcnn.train import build_trainer

    class Scripted(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log_dict({name: float(values[self.current_epoch]) for name, values in logs.items()})

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = DataLoader(TensorDataset(torch.rand(8, 2)), batch_size=4)
    cfg = {"task": "classify", "epochs": len(next(iter(logs.values()))), "accelerator": "cpu", "devices": 1,
           "strategy": "auto", "precision": "32-true", "patience": patience, "best_by": best_by}  # fmt: skip
    trainer = build_trainer(cfg, tmp_path, monitor)
    trainer.fit(Scripted(), loader, loader)
    return trainer


def _saved_epoch(path) -> int:
    return torch.load(path, weights_only=True)["epoch"]


def test_last_checkpoint_is_the_last_epoch_not_the_best(tmp_path):
    trainer = _fit_scripted(tmp_path, {"val_loss": [0, 1, 2]}, 0, ("val_loss", "min"))  # epoch 0 stays the best
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (_saved_epoch(tmp_path / "checkpoints" / "best.ckpt"), last["epoch"], last["global_step"]) == (0, 2, 6)
    assert trainer.checkpoint_callback.best_model_path == str(tmp_path / "checkpoints" / "best.ckpt")


def test_best_checkpoint_by_accuracy_early_stopping_by_loss(tmp_path):
    """CIFAR-10's recipes keep the most accurate epoch while early stopping follows the validation loss (the
    article's EarlyStopping): here the loss is best at epoch 1, the accuracy at epoch 3, and training stops
    three epochs after the loss stopped improving. Digits and MNIST keep the lowest loss."""
    from lcnn.tasks import get_task

    classify = get_task("classify")
    logs = {"val_loss": [1.0, 0.5, 0.6, 0.7, 0.8, 0.9], "val_acc": [0.1, 0.5, 0.6, 0.7, 0.2, 0.2]}
    best_by = classify.recipe("cifar10", "article")["best_by"]
    trainer = _fit_scripted(tmp_path, logs, 3, classify.monitor, best_by)
    assert trainer.current_epoch == 5  # epochs 2, 3, 4 without a better loss: stopped after epoch 4
    assert _saved_epoch(tmp_path / "checkpoints" / "best.ckpt") == 3
    assert "best_by" not in classify.recipe("mnist", "article") | classify.recipe("digits", "strong")


def test_recipe_settings_reach_the_model_and_the_split():
    from lcnn.tasks import get_task
    from lcnn.train import resolve_config

    cfg = resolve_config("classify", "digits", "article", bn_momentum=0.01, val_fraction=0.1)
    task, data = get_task("classify").build(cfg)
    norms = [m for m in task.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 7 and all(m.momentum == 0.01 for m in norms)  # Keras's momentum 0.99
    assert len(data.val_set) == round(0.1 * (len(data.train_set) + len(data.val_set)))


def test_test_time_flip_averages_the_image_and_its_mirror():
    """The strong CIFAR-10 recipe scores each test image as the mean of its and its mirror's probabilities;
    digits, which are not mirror-symmetric, are never flipped."""
    from lcnn.tasks import get_task
    from lcnn.tasks.classify.module import ClassificationModule

    classify = get_task("classify")
    assert classify.resolve("cifar10", "strong")["test_time_flip"]
    assert not any(classify.resolve(data, recipe)["test_time_flip"] for data in ("digits", "mnist")
                   for recipe in ("article", "strong"))
    torch.manual_seed(0)
    task = ClassificationModule(input_shape=(3, 32, 32), test_time_flip=True).eval()
    task.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))  # sees left from right
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        expected = (task(x).softmax(1) + task(x.flip(3)).softmax(1)) / 2
        assert torch.allclose(task.predict_step(x, 0), expected, atol=1e-6)
        assert (expected - task(x).softmax(1)).abs().max() > 1e-2  # the mirror changes the scores
        task.hparams.test_time_flip = False
        assert torch.allclose(task.predict_step(x, 0), task(x).softmax(1), atol=1e-6)
    for flag, value in (("--test-time-flip", True), ("--no-test-time-flip", False)):
        assert build_parser("classify").parse_args(["train", flag]).test_time_flip is value
    assert build_parser("classify").parse_args(["train"]).test_time_flip is None  # the recipe decides


def test_training_output_has_no_false_alarms(tmp_path, recwarn):
    """Lightning's warning that the run folder "is not empty" and that "previous log files will be deleted"
    (it holds config.json; only metrics.csv is replaced) and its cloud-logger advertisement are not shown."""
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert not [w for w in recwarn if "is not empty" in str(w.message)]
    advert = logging.makeLogRecord({"msg": "Tip: try installing [litlogger](https://pypi.org/project/litlogger/)"})
    assert not logging.getLogger("lightning.pytorch.utilities.rank_zero").filter(advert)
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").filter(logging.makeLogRecord({"msg": "GPU"}))


def test_help_reads_well():
    out = subprocess.run([sys.executable, "-m", "lcnn", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--data", "--recipe", "--seed", "--devices", "--precision", "--resume"):
        assert flag in out
    assert "models" in subprocess.run([sys.executable, "-m", "lcnn", "--help"], capture_output=True, text=True,
                                      check=True).stdout


BAD_ARGUMENTS = [  # (command line, what the one line must say)
    (["train", "--model", "bogus"], "unknown model 'bogus'; choose one of: lcnn, lcnn_attention, lcnn_fixed"),
    (["train", "--model", "lightcnn9"], "model 'lightcnn9' is not built for the classify task"),
    (["train", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["train", "--epochs", "two"], "argument --epochs: expected a whole number, got 'two'"),
    (["train", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["train", "--val-fraction", "1.5"], "argument --val-fraction: must be between 0 and 1 (exclusive), got 1.5"),
    (["train", "--lr", "-1"], "argument --lr: must be a finite number above 0, got -1"),
    (["train", "--patience", "-2"], "argument --patience: must be at least 0, got -2"),
    (["train", "--num-workers", "-1"], "argument --num-workers: must be at least 0, got -1"),
    (["train", "--precision", "fp8"], "precision must be one of auto, 32-true"),
    (["train", "--accelerator", "quantum"], "accelerator must be one of auto, cpu"),
    (["train", "--seed", "1", "--seed", "1"], "seeds must be distinct whole numbers, got [1, 1]"),
    (["train", "--recipe", "fast"], "unknown recipe 'fast' for task classify"),
    (["train", "--data", "nowhere"], "unknown image dataset 'nowhere'"),
    (["train", "--task", "spoof", "--frames", "8"], "argument --frames: must be at least 16, got 8"),
    (["train", "--task", "spoof", "--frontend", "mfcc"], "unknown front-end 'mfcc'; expected lfcc, spec, lfb, power"),
    (["train", "--task", "face", "--image-size", "100"], "argument --image-size: must be at least 128, got 100"),
    (["train", "--task", "face", "--pairs", "x"], "unrecognized arguments: --pairs x"),
    (["train", "--resume"], "--resume continues the run in --out: give the run folder"),
    (["evaluate"], "the following arguments are required: RUN_OR_CHECKPOINT"),
    (["evaluate", "nowhere.ckpt"], "nowhere.ckpt: no such checkpoint or run folder"),
    (["predict", "--task", "spoof", "x.ckpt", "a.wav", "--threshold", "high"], "--threshold: expected a number"),
    (["export", "x.ckpt", "--format", "pickle"], "argument --format: invalid choice: 'pickle'"),
    (["benchmark", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_one_line_before_anything_is_created(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in _error(capsys, argv)
    assert not list(tmp_path.iterdir())  # no run folder, no file of any kind


def test_a_checkpoint_with_edited_hyper_parameters_is_one_line(run, tmp_path, capsys):
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    for key, value, message in [("dropout", "lots", "its stored hyper_parameters do not build a classify model"),
                                ("model", "bogus", "unknown model 'bogus'"),
                                ("surprise", 1, "ClassificationModule: unknown setting 'surprise'")]:  # fmt: skip
        edited = {**ckpt, "hyper_parameters": {**ckpt["hyper_parameters"], key: value}}
        torch.save(edited, tmp_path / "edited.ckpt")
        assert message in _error(capsys, ["evaluate", str(tmp_path / "edited.ckpt")])
    torch.save({**ckpt, "hyper_parameters": "nothing"}, tmp_path / "edited.ckpt")
    assert "an inconsistent checkpoint" in _error(capsys, ["evaluate", str(tmp_path / "edited.ckpt")])
