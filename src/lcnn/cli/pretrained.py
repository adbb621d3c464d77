"""``lcnn pretrained list | convert | get``: the released anti-spoofing models (:mod:`lcnn.released`)."""

from __future__ import annotations

import argparse

from lcnn.cli.parsing import Parser, command


def add(commands, task: str | None) -> None:
    """``lcnn pretrained`` and its actions."""
    p = command(commands, "pretrained", task, help="released anti-spoofing models: list them, convert their weights",
                description="The ASVspoof 2021 LFCC-LCNN baselines and the LCNN systems of NII's comparative study "
                            "(Wang & Yamagishi, Interspeech 2021), as lcnn spoof checkpoints.")  # fmt: skip
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True, parser_class=Parser)
    listing = actions.add_parser("list", help="the released systems lcnn converts, with where they come from, and "
                                 "the lcnn models of the Hugging Face Hub already in its cache (hf:ORG/NAME@COMMIT)")
    listing.set_defaults(run=_run_list)
    convert = actions.add_parser(
        "convert", help="an official trained_network.pt -> an lcnn checkpoint",
        description="Convert a released state_dict you have (trained_network.pt) into an lcnn spoof checkpoint that "
                    "evaluate, predict, score and serve load. Weights are read with weights_only=True; a file whose "
                    "keys or shapes are not the format's stops with the first key that differs.")  # fmt: skip
    convert.add_argument("file", metavar="FILE", help="the official trained_network.pt")
    convert.add_argument("--format", required=True, metavar="FORMAT",
                         help="asvspoof2021 (the LA, DF and PA LFCC-LCNN baselines) or nii-mega:VARIANT, VARIANT "
                              "= {lfcc,lfb,spec2}-lcnn-{fixed,attention,lstmsum}-{am,oc,p2s,sig}")  # fmt: skip
    convert.add_argument("--out", required=True, metavar="CKPT", help="the lcnn checkpoint to write")
    convert.add_argument("--source", metavar="TEXT", help="where the file came from, recorded in the checkpoint")
    convert.set_defaults(run=_run_convert)
    get = actions.add_parser("get", help="download a released system (once), convert it, print its checkpoint",
                             description="Download the release archive of NAME into the cache ($LCNN_CACHE/released; "
                                         "resumed where a download stopped, checked against its md5 where known), "
                                         "take its trained_network.pt and convert it, once.")  # fmt: skip
    get.add_argument("name", metavar="NAME", help="a name of lcnn pretrained list")
    get.set_defaults(run=_run_get)


def _run_list(args: argparse.Namespace) -> int:
    from lcnn.hub import cached_models
    from lcnn.released import RELEASED

    print("NAME\tFORMAT\tTRAINED ON\tSOURCE")
    for r in RELEASED.values():
        print(f"{r.name}\t{r.format}\t{r.trained_on}\t{r.source}" + (f" ({r.member})" if "/" in r.member else ""))
    for name, config in cached_models():  # lcnn models of the Hub already downloaded: they load offline
        data = (config.get("run_config") or {}).get("data", "-")
        print(f"{name}\thf ({config['task']}, {config['hyper_parameters'].get('model', '?')})\t{data}\t"
              "the Hugging Face cache")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from lcnn.released import convert

    checkpoint = convert(args.file, args.format, args.out, args.source)
    source = checkpoint["lcnn_source"]
    print(f"{args.out}: {source['variant']} ({checkpoint['hyper_parameters']['model']}, "
          f"{checkpoint['hyper_parameters']['frontend']['name']}, {checkpoint['hyper_parameters']['loss']}) "
          f"from {args.file} (sha256 {source['sha256'][:12]}...)")  # fmt: skip
    return 0


def _run_get(args: argparse.Namespace) -> int:
    from lcnn.released import fetch

    print(fetch(args.name))
    return 0
