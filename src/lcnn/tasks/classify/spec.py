"""What the classify task declares (light: the parser reads it without torch): recipes, options, the import
paths of its LightningModule and DataModule; :class:`lcnn.tasks.classify.task.ClassifyTask` runs it."""

from __future__ import annotations

import argparse

from lcnn.tasks.base import Task, count, fraction, option

# On CIFAR-10 this model's validation accuracy still rises for a few epochs after its validation loss has
# stopped falling, so its recipes keep the most accurate checkpoint (timm's choice too). On small validation
# sets (digits' 270 images, MNIST-5k's 1,000) accuracy ties and one-image differences decide instead, and
# the loss picks better epochs: those recipes keep the lowest-loss checkpoint. (benchmarks/RESULTS-classify.md)
_BEST_BY_ACCURACY = {"best_by": ["val_acc", "max"]}
_ARTICLE_SMALL = {"epochs": 10, "batch_size": 256, "lr": 1e-3, "patience": 3}  # the article's MNIST script
# the article's CIFAR-10 script (and any image folder)
_ARTICLE_LARGE = {"epochs": 100, "batch_size": 64, "lr": 1e-3, "patience": 5, **_BEST_BY_ACCURACY}
# The article has no digits run. Its MNIST batch of 256 gives the 1,078 training digits 5 steps an epoch,
# too few for early stopping to see progress, so digits take batch 32 and the CIFAR-10 patience.
_DIGITS = {"epochs": 30, "batch_size": 32, "lr": 1e-3, "patience": 5}
_STRONG = {"batch_size": 128, "lr": 3e-3, "weight_decay": 5e-4, "optimizer": "adamw", "schedule": "onecycle",
           "label_smoothing": 0.1, "patience": 0}  # fmt: skip
_STRONG_DIGITS = {**_STRONG, "augment": {"shift": 2, "rotate": 10, "scale": 0.1}}


class ClassifySpec(Task):
    """Softmax classification of images with the article's LCNN (or any model built for it)."""

    name = "classify"
    description = "image classification: the article's LCNN on digits, MNIST, CIFAR-10 or an image folder"
    monitor = ("val_loss", "min")  # early stopping, as the article's EarlyStopping(monitor='val_loss')
    default_data = "digits"
    data_help = "digits (default, bundled), mnist, cifar10, folder:PATH"
    recipes = {
        "article": {"digits": _DIGITS, "mnist": _ARTICLE_SMALL, "default": _ARTICLE_LARGE},
        # Same architecture; augmentation, AdamW with a one-cycle schedule and label smoothing. CIFAR-10 and
        # folders are scored with the mirrored view too (digits are not mirror-symmetric: only they flip).
        "strong": {
            "digits": {**_STRONG_DIGITS, "epochs": 30},
            "mnist": {**_STRONG_DIGITS, "epochs": 40},
            "default": {**_STRONG, "epochs": 80, "dropout": 0.3, "val_fraction": 0.1, "test_time_flip": True,
                        "augment": {"shift": 4, "hflip": True, "cutout": 8}, **_BEST_BY_ACCURACY},
        },
    }  # fmt: skip
    module = "lcnn.tasks.classify.module:ClassificationModule"
    datamodule = "lcnn.tasks.classify.data:ImageDataModule"
    module_from_data = ("num_classes", "input_shape", "classes")

    _flip_help = ("score each test image as the mean of its and its mirror image's probabilities (default: %s; on "
                  "in the strong recipe for CIFAR-10 and folders)")  # fmt: skip
    train_options = (
        option("--val-fraction", type=fraction, metavar="F",
               help="share of the training images held out for validation (default: the recipe's, 0.2)"),
        option("--image-size", type=count(16), metavar="PX", help="folders: resize images to this square side"),
        option("--test-time-flip", action=argparse.BooleanOptionalAction, help=_flip_help % "the recipe's"),
    )  # fmt: skip
    evaluate_options = (
        option("--test-time-flip", action=argparse.BooleanOptionalAction, help=_flip_help % "as trained"),
    )
    predict_options = (
        option("--resize", action="store_true", default=None, help="resize images to the model's input size"),
        option("--int8", action=argparse.BooleanOptionalAction,
               help="run the model in int8 on the CPU (x86 with AVX512-VNNI), calibrated on the given images; "
                    "--no-int8: fp32 (default: int8 where it is the fastest here and agrees with fp32 on the first "
                    "batch)"),
    )  # fmt: skip
    implementation = "lcnn.tasks.classify.task:ClassifyTask"
