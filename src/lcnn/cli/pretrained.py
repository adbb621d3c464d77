"""``lcnn pretrained list | convert | get``: the released models (:mod:`lcnn.released`): anti-spoofing, then face."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lcnn.cli.parsing import Parser, command

if TYPE_CHECKING:
    from lcnn.released import Released


def add(commands, task: str | None) -> None:
    """``lcnn pretrained`` and its actions."""
    p = command(commands, "pretrained", task, help="released models: list them, get or convert their weights",
                description="The ASVspoof 2021 LFCC-LCNN baselines, the LCNN systems of NII's comparative study "
                            "(Wang & Yamagishi, Interspeech 2021) and the LightCNN face models (Wu et al.), as lcnn "
                            "checkpoints, with their published results.")  # fmt: skip
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True, parser_class=Parser)
    listing = actions.add_parser(
        "list", help="the released models (published results, licence, size, source; the provenance of those in "
        "the cache), and the lcnn models of the Hugging Face Hub already in its cache (hf:ORG/NAME@COMMIT)",
        description="Without NAME: one tab-separated line per released model (spoof, then face). With NAMEs: "
                    "everything known of each, with the published figures and where they were read, and the "
                    "provenance (source, file SHA-256, licence) of its converted checkpoint if it is in the cache.")
    listing.add_argument("names", nargs="*", metavar="NAME", help="released models to show in full")
    listing.set_defaults(run=_run_list)
    convert = actions.add_parser(
        "convert", help="an official trained_network.pt or LightCNN .pth.tar -> an lcnn checkpoint",
        description="Convert released weights you have (trained_network.pt; a LightCNN .pth.tar) into an lcnn "
                    "checkpoint that evaluate, predict, score (spoof), verify (face) and serve load. Weights are read "
                    "with weights_only=True; a file whose keys or shapes are not the format's stops with the first "
                    "key that differs.")  # fmt: skip
    convert.add_argument("file", metavar="FILE", help="the official trained_network.pt or .pth.tar")
    convert.add_argument("--format", required=True, metavar="FORMAT",
                         help="asvspoof2021 (the LA, DF and PA LFCC-LCNN baselines), nii-mega:VARIANT, VARIANT "
                              "= {lfcc,lfb,spec2}-lcnn-{fixed,attention,lstmsum}-{am,oc,p2s,sig}, or lightcnn:ARCH, "
                              "ARCH = lightcnn9, lightcnn29, lightcnn29v2 or lightcnn_v4 (face)")  # fmt: skip
    convert.add_argument("--out", required=True, metavar="CKPT", help="the lcnn checkpoint to write")
    convert.add_argument("--source", metavar="TEXT", help="where the file came from, recorded in the checkpoint")
    convert.set_defaults(run=_run_convert)
    get = actions.add_parser("get", help="download a released model (once), convert it, print its checkpoint",
                             description="Download the release archive of NAME into the cache ($LCNN_CACHE/released; "
                                         "resumed where a download stopped, checked against its md5 where known), "
                                         "take its weights and convert them, once. The LightCNN files cannot be "
                                         "downloaded for you (Google Drive, no checksum): download them and give "
                                         "--file; then NAME loads wherever a checkpoint is taken.")  # fmt: skip
    get.add_argument("name", metavar="NAME", help="a name of lcnn pretrained list")
    get.add_argument("--file", metavar="FILE", help="the release as you downloaded it (the archive, or the LightCNN "
                                                    ".pth.tar), used instead of a download")  # fmt: skip
    get.set_defaults(run=_run_get)


def _run_list(args: argparse.Namespace) -> int:
    from lcnn.released import RELEASED, fetch

    if args.names:
        for name in args.names:
            if name not in RELEASED:
                fetch(name)  # the one-line error, with the names it resembles
        for name in args.names:
            _show(RELEASED[name])
        return 0
    from lcnn.hub import cached_models
    from lcnn.released import cached, parameters, provenance, published

    print("NAME\tFORMAT\tTASK\tARCHITECTURE\tTRAINED ON\tPUBLISHED\tEVALUATED ON\tLICENCE\tSIZE\tSOURCE\tCACHED")
    sizes: dict[str, str] = {}
    for r in RELEASED.values():
        size = sizes.setdefault(r.format, _size(parameters(r)))
        record = provenance(cached(r.name)) if cached(r.name).is_file() else None
        held = f"sha256 {record['sha256'][:12]}... of {record['file']}" if record else "-"
        print(f"{r.name}\t{r.format}\t{r.task}\t{r.architecture}\t{r.trained_on}\t{published(r)}\t"
              f"{r.evaluated_on.partition(' (')[0]}\t{r.licence.partition(' (')[0]}\t{size}\t{r.source}"
              + (f" ({r.member})" if "/" in r.member else "") + f"\t{held}")  # fmt: skip
    for name, config in cached_models():  # lcnn models of the Hub already downloaded: they load offline
        data = (config.get("run_config") or {}).get("data", "-")
        model = config["hyper_parameters"].get("model", "?")
        print(f"{name}\thf ({config['task']}, {model})\t{config['task']}\t{model}\t{data}\t-\t-\t-\t-\t"
              "the Hugging Face cache\tyes")  # fmt: skip
    return 0


def _size(values: int) -> str:
    return f"{values / 1e6:.2f} M values ({values * 4 / 2**20:.1f} MiB float32)"


def _show(r: Released) -> None:
    """Everything known of one released model, and the provenance of its checkpoint in the cache."""
    from lcnn.released import cached, parameters, provenance

    arch = r.format.partition(":")[2] if r.task == "face" else None
    lines = [("task", r.task), ("architecture", r.architecture), ("format", r.format), ("trained on", r.trained_on),
             *(("published " + metric, value) for metric, value in r.figures), ("evaluated on", r.evaluated_on),
             ("reference", r.reference), ("licence", r.licence), ("size", _size(parameters(r))),
             ("source", r.source + (f" ({r.member})" if r.member else "")), ("md5", r.archive_md5 or "-"),
             ("code", r.code)]  # fmt: skip
    if not r.figures:
        lines.insert(4, ("published", "- (not found)"))
    path = cached(r.name)
    record = provenance(path) if path.is_file() else None
    if record:
        lines += [("cached", str(path)), *((f"  {k}", str(v)) for k, v in record.items())]
    else:
        get = f"lcnn pretrained get {r.name}" + (" --file FILE" if arch else "")
        lines.append(("cached", f"no ({get})"))
    print(r.name)
    for key, value in lines:
        print(f"  {key}: {value}")


def _run_convert(args: argparse.Namespace) -> int:
    from lcnn.released import convert

    checkpoint = convert(args.file, args.format, args.out, args.source)
    source, hparams = checkpoint["lcnn_source"], checkpoint["hyper_parameters"]
    design = f"{hparams['model']}, {hparams['frontend']['name']}, {hparams['loss']}" if "frontend" in hparams else \
        f"{hparams['model']} embedder"  # fmt: skip
    print(f"{args.out}: {source['variant']} ({design}) from {args.file} (sha256 {source['sha256'][:12]}...)")
    return 0


def _run_get(args: argparse.Namespace) -> int:
    from lcnn.released import fetch

    print(fetch(args.name, file=args.file))
    return 0
