"""The released LCNN countermeasures' weights under lcnn's names: the ASVspoof 2021 LFCC-LCNN baselines and the
36 systems of NII's comparative study (``project-NN-Pytorch-scripts``, ``project/03-asvspoof-mega``).

Both save ``torch.save(model.state_dict())`` of NII's ``Model`` (``trained_network.pt``). A :class:`Variant` is one
system's design (front-end, back-end, head); :func:`official_keys` lists the keys and shapes its file must hold,
in the official order, each with the lcnn key it becomes (``None``: not used by the network at inference: the
input / output normalisers, which forward never applies, and the LFCC / LFB front-end constants, which lcnn
builds from the front-end's settings); :func:`map_official` checks a file against that list and renames it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from lcnn.audio.pipeline import frontend_config
from lcnn.errors import UserError

FEATURES = ("lfcc", "lfb", "spec2")
NETS = ("fixed", "attention", "lstmsum")
LOSSES = ("am", "oc", "p2s", "sig")
# The trunk's layers: official m_transform.0 indices -> lcnn_trunk indices (convolutions, then BatchNorms).
_CONVS = {0: 0, 3: 2, 6: 4, 10: 7, 13: 9, 16: 11, 19: 13, 22: 15, 25: 17}
_NORMS = {5: 3, 9: 6, 12: 8, 18: 12, 21: 14, 24: 16}
_CONV_SHAPES = [(64, 1, 5), (64, 32, 1), (96, 32, 3), (96, 48, 1), (128, 48, 3), (128, 64, 1), (64, 64, 3), (64, 32, 1),
                (64, 32, 3)]  # fmt: skip
_NORM_WIDTHS = [32, 48, 48, 64, 32, 32]


@dataclass(frozen=True)
class Variant:
    """One released system's design. ``feature``: ``lfcc2021`` (the 2021 baselines: 1024-point FFT, 0-4 kHz),
    ``lfcc``, ``lfb`` or ``spec2``; ``net``: ``fixed``, ``attention`` or ``lstmsum``; ``loss``: ``am``, ``oc``,
    ``p2s`` or ``sig``."""

    name: str
    feature: str
    net: str
    loss: str

    @property
    def embedding(self) -> int:
        """The size of the output layer: the logit (sig), or the embedding the angular head takes."""
        return {"sig": 1, "oc": 256 if self.net == "fixed" else 64}.get(self.loss, 64)

    @property
    def hidden(self) -> int:
        """The ``fixed`` back-end's hidden layer (before its MaxFeatureMap halves it)."""
        return 512 if self.loss in ("am", "oc") else 160

    @property
    def module_settings(self) -> dict:
        """The :class:`lcnn.tasks.spoof.module.SpoofModule` settings that build this system."""
        frontend = {"lfcc2021": frontend_config("lfcc"), "lfcc": frontend_config("lfcc", n_fft=512, f_max=8000.0),
                    "lfb": frontend_config("lfb"), "spec2": frontend_config("power")}[self.feature]  # fmt: skip
        model = {"fixed": "lcnn_fixed", "attention": "lcnn_attention", "lstmsum": "lcnn_lstm"}[self.net]
        settings = {"model": model, "frontend": frontend, "n_features": 257 if self.feature == "spec2" else 60,
                    "frames": None, "loss": {"am": "amsoftmax", "oc": "ocsoftmax", "p2s": "p2sgrad",
                                             "sig": "sigmoid"}[self.loss],
                    "filterbank": 60 if self.feature == "spec2" else None,
                    "embedding": None if self.loss == "sig" else self.embedding,
                    # The attention back-end keeps the official memory layout: its convolutions then round as the
                    # official ones, and a two-step pooling's standard deviation is ill-conditioned (channels-last
                    # moved a score by 5e-6 of the 1e-5 parity). The others run channels-last, 2.7x as fast on
                    # a CPU, within 4e-6 of the official scores (the fixture's 15 variants).
                    "channels_last": self.net != "attention"}  # fmt: skip
        if self.net == "lstmsum":
            settings["pooling"] = "mean" if self.loss == "sig" else "sum"
        if self.net == "fixed":
            settings["hidden"] = self.hidden
        if self.loss == "am":  # training only: inference applies neither
            settings["margin"], settings["scale"] = (0.35, 10.0) if self.feature == "lfb" else (0.9, 20.0)
        return settings


def train_arguments(variant: Variant) -> list[str]:
    """The ``lcnn train --task spoof`` options that train ``variant``'s design from scratch."""
    settings = variant.module_settings
    frontend = settings["frontend"]
    args = ["--model", settings["model"], "--frontend", frontend["name"], "--loss", settings["loss"]]
    if frontend["name"] == "lfcc":
        args += ["--n-fft", str(frontend["n_fft"]), "--f-max", str(frontend["f_max"])]
    for key in ("pooling", "hidden", "filterbank", "embedding", "margin", "scale"):
        if settings.get(key) is not None:
            args += [f"--{key}", str(settings[key])]
    return args


def parse_format(text: str) -> Variant:
    """``asvspoof2021`` (the LA, DF and PA baselines: one architecture) or ``nii-mega:FEATURE-lcnn-NET-LOSS``."""
    if text == "asvspoof2021":
        return Variant("asvspoof2021", "lfcc2021", "lstmsum", "sig")
    kind, _, name = text.partition(":")
    parts = name.split("-")
    if kind != "nii-mega" or len(parts) != 4 or parts[1] != "lcnn" or parts[0] not in FEATURES \
            or parts[2] not in NETS or parts[3] not in LOSSES:  # fmt: skip
        raise UserError(f"unknown format {text!r}; expected asvspoof2021 or nii-mega:FEATURE-lcnn-NET-LOSS with "
                        f"FEATURE in {'/'.join(FEATURES)}, NET in {'/'.join(NETS)}, LOSS in {'/'.join(LOSSES)} "
                        "(e.g. nii-mega:lfcc-lcnn-lstmsum-p2s)")  # fmt: skip
    return Variant(name, parts[0], parts[2], parts[3])


def official_keys(variant: Variant) -> list[tuple[str, tuple[int, ...], str | None]]:
    """``(official key, shape, lcnn key or None)`` of every entry of the variant's ``trained_network.pt``."""
    keys: list[tuple[str, tuple[int, ...], str | None]] = [(k, (1,), None) for k in
                                                           ("input_mean", "input_std", "output_mean", "output_std")]
    shift = 1 if variant.feature == "spec2" else 0
    if shift:
        keys.append(("m_transform.0.0.weight", (257, 60), "model.filterbank.weight"))
    for (official, mine), (out, inp, k) in zip(_CONVS.items(), _CONV_SHAPES, strict=True):
        keys += [(f"m_transform.0.{official + shift}.weight", (out, inp, k, k), f"model.features.{mine}.filter.weight"),
                 (f"m_transform.0.{official + shift}.bias", (out,), f"model.features.{mine}.filter.bias")]
    for (official, mine), width in zip(_NORMS.items(), _NORM_WIDTHS, strict=True):
        for part, shape in (("running_mean", (width,)), ("running_var", (width,)), ("num_batches_tracked", ())):
            keys.append((f"m_transform.0.{official + shift}.{part}", shape, f"model.features.{mine}.{part}"))
    emb = variant.embedding
    if variant.net == "lstmsum":
        keys += [("m_output_act.0.weight", (emb, 96), "model.classifier.weight"),
                 ("m_output_act.0.bias", (emb,), "model.classifier.bias")]
        for layer in (0, 1):
            for direction in ("", "_reverse"):
                for part, shape in (("weight_ih", (192, 96)), ("weight_hh", (192, 48)), ("bias_ih", (192,)),
                                    ("bias_hh", (192,))):  # fmt: skip
                    keys.append((f"m_before_pooling.0.{layer}.l_blstm.{part}_l0{direction}", shape,
                                 f"model.lstm.{part}_l{layer}{direction}"))  # fmt: skip
    elif variant.net == "attention":
        keys += [("m_output_act.0.weight", (emb, 192), "model.classifier.weight"),
                 ("m_output_act.0.bias", (emb,), "model.classifier.bias"),
                 ("m_pooling.0.mm_weights", (1, 96), "model.attention.weight")]
    else:
        hidden = variant.hidden
        keys += [("m_output_act.0.1.weight", (hidden, 4416), "model.hidden.filter.weight"),
                 ("m_output_act.0.1.bias", (hidden,), "model.hidden.filter.bias"),
                 ("m_output_act.0.3.weight", (emb, hidden // 2), "model.classifier.weight"),
                 ("m_output_act.0.3.bias", (emb,), "model.classifier.bias")]
    if variant.feature != "spec2":  # LFCC's and LFB's constants (LFB keeps an unused DCT)
        bins, filters = {"lfcc2021": (256, 20), "lfcc": (257, 20), "lfb": (257, 60)}[variant.feature]
        keys += [("m_frontend.0.lfcc_fb", (bins, filters), None),
                 ("m_frontend.0.l_dct.weight", (filters, filters), None)]
    if variant.loss == "oc":
        key = "m_a_softmax.0.weight" if variant.net == "fixed" else "m_angle.0.weight"
        keys.append((key, (emb, 1), "oc.center"))  # lcnn's center is the (1, emb) transpose
    elif variant.loss in ("am", "p2s"):
        keys.append(("m_angle.0.weight", (emb, 2), "head.weight"))
    return keys


def map_official(state: dict, variant: Variant, where: str) -> dict[str, Tensor]:
    """The official ``state`` renamed to the spoof module's keys; a :class:`UserError` naming the first key that
    is missing, unexpected or of another shape than the variant's."""
    if not isinstance(state, dict):
        raise UserError(f"{where}: not a state_dict (a {type(state).__name__}); expected {variant.name}'s "
                        "trained_network.pt")  # fmt: skip
    expected = official_keys(variant)
    names = {key for key, _, _ in expected}
    for key, shape, _ in expected:
        if key not in state:
            raise UserError(f"{where}: no key {key!r}, which {variant.name} has: not a {variant.name} state_dict")
        found = tuple(getattr(state[key], "shape", ()))
        if not isinstance(state[key], Tensor) or found != shape:
            raise UserError(f"{where}: key {key!r} has shape {list(found)}, {variant.name} has {list(shape)}")
    for key in state:
        if key not in names:
            raise UserError(f"{where}: unexpected key {key!r}: not a {variant.name} state_dict")
    return {mine: state[key].T if mine == "oc.center" else state[key] for key, _, mine in expected if mine}
