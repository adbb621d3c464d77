"""What the face task declares (light: the parser reads it without torch): recipes, options, the import paths
of its LightningModule and DataModule; :class:`lcnn.tasks.face.task.FaceTask` runs it."""

from __future__ import annotations

import argparse
from typing import Any

from lcnn.tasks.base import Task, count, finite, fraction, option, positive

# The official LightCNN training (github.com/AlfredXiangWu/LightCNN, train.py): 80 epochs of SGD, lr 0.01
# scaled by 0.457305 every 10 epochs, batch 128, random 128 crops and flips of 144x144 faces.
_OFFICIAL = {
    "epochs": 80, "batch_size": 128, "lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4,
    "schedule": "step:10:0.457305", "lr_multipliers": True, "loss": "softmax", "patience": 0,
}  # fmt: skip
# A few hundred images (ORL: 240 training images of 30 people), measured in benchmarks/RESULTS-face.md:
# AM-softmax, AdamW with a one-cycle schedule (SGD at 0.01 did not start learning), faces resized to 160
# before the 128 crop (+-16 pixel shifts) and rotation / scale jitter. Aligned photos (--align) keep the official
# 144 image instead, cropped at 128 as it is: better than 160 on ORL, also measured there.
_SMALL = {
    "epochs": 40, "batch_size": 32, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 5e-4,
    "schedule": "onecycle", "lr_multipliers": False, "loss": "amsoftmax", "patience": 0, "image_size": 160,
    "augment": {"rotate": 15, "scale": 0.15},
}  # fmt: skip
_ORL = {"people": "s1-s30"}  # ORL's usual split: train on s1-s30, verify on the ten others

# The one rule of every face path: with --align the images are photos, each face detected and aligned first.
_ALIGN = option("--align", action=argparse.BooleanOptionalAction,
                help="the images are photos: detect the face (MTCNN) and align it as the official LightCNN images "
                     "(default: as the checkpoint was trained; images taken as aligned crops)")
_RELEASED = option("--model", metavar="ARCH",
                   help="CHECKPOINT is a released LightCNN file (.pth.tar) of this architecture, e.g. lightcnn29v2")


class FaceSpec(Task):
    """Identity training and pair verification with the LightCNN models."""

    name = "face"
    description = "face verification with the LightCNN models (the official weights, or trained here)"
    monitor = ("val_loss", "min")
    default_data = "orl"
    data_help = "orl (with --data-dir), folder:PATH (one subfolder per person)"
    recipes = {
        "article": {"orl": {**_OFFICIAL, **_ORL}, "default": _OFFICIAL},  # the LightCNN paper's official recipe
        "small": {"orl": {**_SMALL, **_ORL}, "default": _SMALL},
    }
    path_settings = ("data_dir", "init", "people")  # people: a file of names, where it names one
    module = "lcnn.tasks.face.module:FaceModule"
    datamodule = "lcnn.tasks.face.data:FaceDataModule"
    module_from_data = ("num_classes", "classes", "image_size", "align")
    data_from_model = ("channels",)

    train_options = (
        option("--loss", choices=["softmax", "amsoftmax", "arcface"],
               help="identity loss (default softmax; small recipe amsoftmax)"),
        option("--margin", type=positive, help="margin (AM-softmax 0.35, ArcFace 0.5 radians by default)"),
        option("--scale", type=positive, help="logit scale of the margin losses (AM-softmax 30, ArcFace 64)"),
        option("--init", metavar="PATH", help="fine-tune from an official LightCNN checkpoint (fresh classifier)"),
        option("--people", metavar="SPEC", help="people to train on, e.g. s1-s30, 'alice,bob' or a file of names "
                                                "(the others are the test people; orl default s1-s30)"),
        option("--val-fraction", type=fraction, metavar="F",
               help="share of each person's images held out for validation (default 0.2)"),
        option("--image-size", type=count(128), metavar="PX",
               help="side the faces are resized to before the 128x128 crop (default 144; small recipe 160, or 144 "
                    "with --align)"),
        _ALIGN,
    )  # fmt: skip
    evaluate_options = (
        option("--pairs", metavar="FILE", help="pairs file (LFW pairs.txt format or 'path1 path2 label' lines)"),
        _RELEASED,
        _ALIGN,
    )
    predict_options = (
        option("--out", dest="out_dir", metavar="DIR", help="where to write embeddings.npy and its index"),
        option("--int8", action=argparse.BooleanOptionalAction,
               help="run the model in int8 on the CPU (x86 with AVX512-VNNI), calibrated on the given images; "
                    "--no-int8: fp32 (default: int8 where it is the fastest here and agrees with fp32 on the first "
                    "batch)"),
        _RELEASED,
        _ALIGN,
    )  # fmt: skip
    verify_options = (
        option("--threshold", type=finite, help="similarity threshold (default: the one chosen in training)"),
        _RELEASED,
        _ALIGN,
    )
    implementation = "lcnn.tasks.face.task:FaceTask"

    def resolve(self, data: str | None = None, recipe: str = "article", **overrides: Any) -> dict[str, Any]:
        cfg = super().resolve(data, recipe, **overrides)
        if cfg["align"] and overrides.get("image_size") is None:
            cfg["image_size"] = 144  # the side of the official aligned image, which --align makes
        return cfg
