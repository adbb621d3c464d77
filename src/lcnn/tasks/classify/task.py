"""Image classification: the article's experiments (digits, MNIST, CIFAR-10) and any image folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lcnn.config import build
from lcnn.data.images import ImageFileDataset
from lcnn.errors import UserError
from lcnn.inference import calibration_subset
from lcnn.io import write_json
from lcnn.plots import plot_confusion
from lcnn.precision import top1_agreement
from lcnn.speed import prepare_input
from lcnn.tasks.classify.data import ImageDataModule
from lcnn.tasks.classify.spec import ClassifySpec
from lcnn.tasks.common import inference_trainer, predict_precision


class ClassifyTask(ClassifySpec):
    """Softmax classification of images with the article's LCNN (or any model built for it)."""

    def test(self, trainer: Any, module: Any, datamodule: Any, run_dir: Path) -> dict[str, Any]:
        """Accuracy and loss of the best checkpoint on the whole test split."""
        result = trainer.test(module, datamodule, ckpt_path="best", verbose=False)[0]
        return {"test_acc": result["test_acc"], "test_loss": result["test_loss"],
                "test_count": int(result["test_count"])}  # fmt: skip

    def evaluate(self, module: Any, cfg: dict[str, Any], out_dir: Path, data: str | None = None,
                 data_dir: str | None = None, batch_size: int | None = None,
                 test_time_flip: bool | None = None) -> dict[str, Any]:  # fmt: skip
        """Test accuracy and loss on the test split of ``data`` (default: the training data), per-class
        accuracy and a confusion matrix PNG; ``test_time_flip`` overrides the trained setting."""
        if test_time_flip is not None:
            module.hparams.test_time_flip = test_time_flip
        name = data or cfg.get("data", self.default_data)
        settings = {**cfg, "data": name, "data_dir": data_dir if data else data_dir or cfg.get("data_dir")}
        settings["batch_size"] = batch_size or cfg.get("batch_size", 256)
        datamodule = build(ImageDataModule, settings)
        datamodule.prepare_data()
        datamodule.setup("test")
        _check_shape(module, datamodule.input_shape, name)
        trained = list(module.hparams.classes or [])
        if trained and list(datamodule.classes) != trained:
            extra = [c for c in datamodule.classes if c not in trained] or list(datamodule.classes)
            raise UserError(f"{name}: its classes ({len(datamodule.classes)}: {', '.join(map(str, extra[:3]))}...) "
                            f"are not the model's ({len(trained)}: {', '.join(map(str, trained[:3]))}...); a "
                            "classifier is evaluated on the classes it was trained on, in their order")  # fmt: skip
        probs = torch.cat(inference_trainer().predict(module, datamodule.predict_dataloader()))
        labels = datamodule.splits.test_labels
        predicted = probs.argmax(1)
        classes = trained or datamodule.classes
        confusion = torch.zeros(len(classes), len(classes), dtype=torch.long)
        confusion.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
        per_class = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
        metrics = {
            "data": name,
            "test_time_flip": module.hparams.test_time_flip,
            "test_acc": float((predicted == labels).float().mean()),
            "test_loss": float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)),
            "test_count": len(labels),
            "per_class_acc": dict(zip(classes, per_class)),
        }
        write_json(out_dir / "metrics.json", metrics)
        plot_confusion(confusion.numpy(), classes, out_dir / "confusion.png")
        return metrics

    def predict(self, module: Any, cfg: dict[str, Any], files: list[Path], resize: bool = False,
                int8: bool | None = None, batch_size: int | None = None) -> list[str]:  # fmt: skip
        """``FILE<TAB>CLASS<TAB>PROBABILITY`` for each image file. ``int8``: the model in int8, calibrated on up
        to 256 of the images, spread over the list; ``None``: where the precision probe finds int8 the fastest
        here and it agrees with fp32 on the first batch (:func:`lcnn.tasks.common.predict_precision`)."""
        images = ImageFileDataset(files, tuple(module.hparams.input_shape), resize)
        batch_size = batch_size or 256

        def stack(indices: Any) -> Any:
            return prepare_input(torch.stack([images[i] for i in indices]))

        spread, first = calibration_subset(range(len(images)), 256), range(min(batch_size, len(images)))
        precision = predict_precision(self.name, module, int8, lambda: stack(spread), lambda: stack(first),
                                      top1_agreement, run=lambda model, x: model(x))  # fmt: skip
        loader = DataLoader(images, batch_size=batch_size)
        probs = torch.cat(inference_trainer(precision=precision).predict(module, loader)).float()
        classes = module.hparams.classes or [str(i) for i in range(probs.shape[1])]
        best, index = probs.max(1)
        return [f"{path}\t{classes[i]}\t{p:.4f}" for path, i, p in zip(files, index.tolist(), best.tolist())]

    def example_input(self, module: Any) -> Any:
        """A batch of two inputs of the model's shape, for export."""
        return torch.rand(2, *module.hparams.input_shape)


def _check_shape(module: Any, shape: tuple[int, ...], where: str) -> None:
    expected = tuple(module.hparams.input_shape)
    if tuple(shape) != expected:
        raise UserError(
            f"{where}: images are {'x'.join(map(str, shape))}, the model expects {'x'.join(map(str, expected))}"
        )
