"""The score-file commands of ``lcnn``: ``check-scores``, ``calibrate`` and ``fuse``.

They work on score files (:mod:`lcnn.score.files`) and keys (any protocol :func:`lcnn.data.protocols.read_protocol`
reads); each file is checked against the key first. Building their parsers imports nothing heavy; each command
imports what it runs. Calibration and fusion are fitted at ASVspoof 5's operating point (Pspoof 0.05 by default,
Cmiss 1, Cfa 10) with :func:`lcnn.metrics.fit_calibration` / :func:`lcnn.metrics.fit_fusion`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lcnn.cli.parsing import command, short_names
from lcnn.errors import UserError
from lcnn.tasks import find_checkpoint
from lcnn.tasks.base import fraction

KEY_HELP = "the key: a protocol or key file (ASVspoof 2019 / 2021 / 5, In-the-Wild meta.csv, CSV); default: the " \
           "labels of the score files themselves (ID ATTACK KEY SCORE)"  # fmt: skip


def add(commands: Any, task: str | None = None) -> None:
    """``lcnn check-scores``, ``calibrate`` and ``fuse``."""
    p = command(commands, "check-scores", help="check score files against a key before computing any metric",
                 description="Check score files against their key: missing, extra or duplicate ids, NaN or "
                 "infinite scores, decisions instead of scores, labels that contradict the key (errors: exit 2), and "
                 "inverted-looking scores (a warning). Prints each file's pooled EER and min DCF when usable.")
    p.add_argument("scores", nargs="+", metavar="SCORES")
    p.add_argument("--protocol", "--key", dest="protocol", metavar="KEY", help=KEY_HELP)
    p.set_defaults(run=run_check_scores)

    p = command(commands, "calibrate", help="fit llr = a * score + b on dev scores; into a JSON and a checkpoint",
                 description="Fit an affine calibration of dev scores to log-likelihood ratios (prior-weighted "
                 "logistic regression at the operating point) and write it to --out; with --checkpoint, also into the "
                 "checkpoint, whose evaluate and predict then report LLRs, act DCF, Cllr and posteriors.")
    p.add_argument("scores", metavar="DEV_SCORES", help="dev scores (e.g. scores-dev.txt of a run)")
    p.add_argument("--protocol", "--key", dest="protocol", metavar="DEV_KEY", help=KEY_HELP)
    p.add_argument("--out", required=True, metavar="JSON", help="where to write the calibration")
    p.add_argument("--checkpoint", metavar="CKPT", help="a spoof checkpoint or run folder to store the calibration in")
    p.add_argument("--p-spoof", type=fraction, default=0.05, help="prior of a spoof at the operating point (0.05)")
    p.set_defaults(run=run_calibrate)

    p = command(commands, "fuse", help="learn a logistic-regression fusion of systems on dev; apply it to eval",
                 description="Learn fusion weights of several systems' dev scores (logistic regression at the "
                 "operating point: the fused scores are LLRs) and write the fused scores of --apply (the same "
                 "systems' eval scores, in the same order; without it, of the dev files) to --out and the weights "
                 "to --weights. Every file must score the same trials.")
    p.add_argument("dev", nargs="+", metavar="DEV_SCORES", help="one dev score file per system")
    p.add_argument("--protocol", "--key", dest="protocol", metavar="DEV_KEY", help=KEY_HELP)
    p.add_argument("--apply", nargs="+", metavar="EVAL_SCORES", help="the same systems' scores to fuse")
    p.add_argument("--out", required=True, metavar="FILE", help="fused scores (ID SCORE; .tsv: ASVspoof 5 form)")
    p.add_argument("--weights", metavar="JSON", help="where to write the fusion (default: --out with .json)")
    p.add_argument("--p-spoof", type=fraction, default=0.05, help="prior of a spoof at the operating point (0.05)")
    p.set_defaults(run=run_fuse)


def _warn(check: Any) -> None:
    for warning in check.warnings:
        print(f"lcnn: warning: {check.name}: {warning}", file=sys.stderr)


def _key(protocol: str | None, first_scores: str) -> tuple[list, str]:
    """The key's trials and its name: ``protocol``, else the labels of the score file ``first_scores``."""
    from lcnn.data.protocols import Trial, read_protocol
    from lcnn.score.files import read_scores

    if protocol:
        return read_protocol(protocol), protocol
    scores = read_scores(first_scores)
    if scores.keys is None:
        raise UserError(f"{first_scores} carries no labels: give the key with --protocol KEY")
    return [Trial(u, k) for u, k in zip(scores.ids, scores.keys)], f"the labels of {first_scores}"


def run_check_scores(args: argparse.Namespace) -> int:
    from lcnn.data.protocols import read_protocol
    from lcnn.errors import DataError
    from lcnn.score.files import check_scores, read_scores

    trials = read_protocol(args.protocol) if args.protocol else None
    failed = 0
    for path in args.scores:
        try:
            check = check_scores(read_scores(path), trials, args.protocol or "the key")
            _warn(check)
            check.raise_errors()
        except DataError as err:
            if len(args.scores) == 1:
                raise
            print(f"lcnn: error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(check.summary())
    return 2 if failed else 0


def _labelled(trials: list, scores: Any) -> tuple[Any, Any]:
    import numpy as np

    bona = np.array([t.key == "bonafide" for t in trials])
    return scores[bona], scores[~bona]


def run_calibrate(args: argparse.Namespace) -> int:
    from lcnn.io import write_json
    from lcnn.metrics import fit_calibration
    from lcnn.score.files import load_scores
    from lcnn.tasks.spoof.tables import metric_row

    trials, key = _key(args.protocol, args.scores)
    if any(t.key is None for t in trials):
        raise UserError(f"{key}: a trial list without labels; calibrating needs the dev key")
    scores, check = load_scores(args.scores, trials, key)
    _warn(check)
    bona, spoof = _labelled(trials, scores)
    try:
        calibration = fit_calibration(bona, spoof, p_spoof=args.p_spoof)
    except ValueError as err:
        raise UserError(f"{args.scores}: {err}") from None
    rows = {"raw scores": metric_row(bona, spoof, bona, spoof),
            "calibrated": metric_row(*(calibration.apply(x) for x in (bona, spoof, bona, spoof)))}  # fmt: skip
    stored = None
    if args.checkpoint:  # first: a wrong or busy checkpoint leaves nothing written
        from lcnn.runs import RunFolder
        from lcnn.tasks.spoof.calibrate import store_calibration

        ckpt = find_checkpoint(args.checkpoint)
        RunFolder(ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent).refuse_if_held()
        stored = store_calibration(ckpt, calibration)
    write_json(args.out, {"calibration": calibration.to_dict(), "scores": args.scores, "protocol": key,
                          "dev": rows})  # fmt: skip
    print(f"{args.scores}: {len(bona)} bona fide, {len(spoof)} spoof; Pspoof {args.p_spoof:g}, Cmiss 1, Cfa 10")
    _print_rows(rows)
    a, b = calibration.a, calibration.b
    print(f"llr = {a:.6g} * score {'-' if b < 0 else '+'} {abs(b):.6g}; written to {args.out}")
    if stored is not None:
        print(f"stored in {stored}")
    return 0


def _print_rows(rows: dict[str, dict], weights: dict[str, float] | None = None) -> None:
    """A fixed-width table of :func:`~lcnn.tasks.spoof.tables.metric_row` rows, with the fusion ``weights``."""
    width = max(12, *(len(name) + 2 for name in rows))
    head = f"{'weight':>10}" if weights is not None else ""
    print(f"{'':<{width}}{head}{'EER (%)':>10}{'min DCF':>10}{'act DCF':>10}{'Cllr':>10}{'min Cllr':>10}")
    for name, r in rows.items():
        weight = "" if weights is None else f"{weights[name]:>10.4g}" if name in weights else " " * 10
        print(f"{name:<{width}}{weight}{100 * r['eer']:>10.3f}{r['min_dcf']:>10.4f}{r['act_dcf']:>10.4f}"
              f"{r['cllr']:>10.4f}{r['min_cllr']:>10.4f}")  # fmt: skip


def run_fuse(args: argparse.Namespace) -> int:
    import numpy as np

    from lcnn.data.protocols import Trial
    from lcnn.io import refuse_overwrite, write_json
    from lcnn.metrics import fit_fusion
    from lcnn.score.files import aligned, check_scores, load_scores, read_scores, write_score_file
    from lcnn.tasks.spoof.tables import metric_row

    out = Path(args.out)
    weights_path = Path(args.weights) if args.weights else out.with_suffix(".json")
    if weights_path == out:
        raise UserError(f"--out {out} would be overwritten by the weights; give --weights JSON")
    if not args.weights:  # the derived name; what the user gives is checked with every command's outputs
        named = [("DEV", p) for p in args.dev] + [("--apply", p) for p in args.apply or []]
        refuse_overwrite([("--weights (from --out)", weights_path)], named + [("--protocol", args.protocol)])
    if args.apply and len(args.apply) != len(args.dev):
        raise UserError(f"{len(args.dev)} dev score files but {len(args.apply)} in --apply: give the same systems, "
                        f"in the same order")  # fmt: skip
    trials, key = _key(args.protocol, args.dev[0])
    if any(t.key is None for t in trials):
        raise UserError(f"{key}: a trial list without labels; fusion is learnt on the dev key")
    dev = []
    for path in args.dev:
        scores, check = load_scores(path, trials, key)
        _warn(check)
        dev.append(scores)
    x = np.column_stack(dev)
    bona, spoof = _labelled(trials, x)
    try:
        fusion = fit_fusion(bona, spoof, p_spoof=args.p_spoof)
    except ValueError as err:
        raise UserError(f"{', '.join(args.dev)}: {err}") from None

    if args.apply:  # every file scores the trials of the first, once each
        files = [read_scores(path) for path in args.apply]
        reference = [Trial(u) for u in dict.fromkeys(files[0].ids)]
        for f in files:
            check = check_scores(f, reference, files[0].name)
            _warn(check)
            check.raise_errors()
        ids, target = [t.utt for t in reference], np.column_stack([aligned(f, reference) for f in files])
    else:
        ids, target = [t.utt for t in trials], x
    write_score_file(out, ids, fusion.apply(target))

    names = short_names(args.dev)
    rows = {name: metric_row(bona[:, i], spoof[:, i], bona[:, i], spoof[:, i]) for i, name in enumerate(names)}
    fb, fs = fusion.apply(bona), fusion.apply(spoof)
    rows["fused"] = metric_row(fb, fs, fb, fs)
    write_json(weights_path, {"fusion": fusion.to_dict(), "systems": args.dev, "applied_to": args.apply or args.dev,
                              "protocol": key, "dev": rows})  # fmt: skip
    print(f"dev ({len(bona)} bona fide, {len(spoof)} spoof; scores read as LLRs for act DCF and Cllr):")
    _print_rows(rows, dict(zip(names, fusion.weights)))
    print(f"fused {len(ids)} trials of {', '.join(args.apply or args.dev)} into {out}; weights in {weights_path}")
    return 0
