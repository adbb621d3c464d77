"""``lcnn faces``: photos to aligned faces, galleries (enrol, search) and identity similarity.

``align`` needs no checkpoint (the packaged MTCNN detector); ``enroll``, ``search`` and ``similarity`` embed
images with a face checkpoint (a run's, or a released LightCNN file with ``--model ARCH``) through the
checkpoint's own preprocessing, with ``--align`` for photos: the rule of every face path.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lcnn.cli.parsing import command
from lcnn.errors import UserError
from lcnn.tasks.base import count

EPILOG = """examples:
  lcnn faces align photos/ aligned/                        faces.csv and contact_sheet.png in aligned/
  lcnn faces enroll runs/face-orl/ people/ --gallery g.npz --align
  lcnn faces search runs/face-orl/ g.npz probe.jpg --top-k 3 --align
  lcnn faces similarity LightCNN_29Layers_V2.pth.tar --model lightcnn29v2 real/ generated/ --plot hist.png
"""


def add(commands, task: str | None) -> None:
    """``lcnn faces align | enroll | search | similarity``."""
    p = command(commands, "faces", task, help="face photos: align, enrol a gallery, search it, identity similarity",
                description="Faces from photos: detection and the official LightCNN alignment, galleries for 1:N "
                "search, and identity similarity between two folders.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=type(p))

    a = sub.add_parser("align", help="detect and align every photo of a folder",
                       description="Detect the faces of every photo under IN_DIR (MTCNN, 5 landmarks) and write "
                       "each photo's subject (its largest face) aligned as the official LightCNN images: grey, eyes "
                       "level, eye centre at y=48 and 48 px above the mouth centre in 144x144 (--size 128: the "
                       "centre crop the networks are tested on). Writes faces.csv (every face's box, score and "
                       "points; photos without a face listed as such) and contact_sheet.png.")  # fmt: skip
    a.add_argument("in_dir", metavar="IN_DIR")
    a.add_argument("out_dir", metavar="OUT_DIR", help="a folder outside IN_DIR (its layout is kept)")
    a.add_argument("--size", type=int, choices=(144, 128), default=144, help="144 (training images) or 128")
    a.add_argument("--colour", action="store_true", help="keep RGB (LightCNN-V4) instead of grey")
    a.add_argument("--all-faces", action="store_true", help="align every face found, not just the largest")
    a.add_argument("--landmarks", metavar="CSV", help="points from another detector, in faces.csv's columns "
                   "(image, left_eye_x, ..., mouth_right_y): used instead of detection for the photos listed")
    a.set_defaults(run=_run_align)

    e = sub.add_parser("enroll", help="add people's images to a gallery",
                       description="Embed the images of PEOPLE_DIR (one subfolder per person) and add them to the "
                       "gallery file (created, or appended to). The gallery's 'unknown' threshold is the "
                       "equal-error point of its own genuine and impostor pairs.")  # fmt: skip
    _model_arguments(e)
    e.add_argument("people_dir", metavar="PEOPLE_DIR")
    e.add_argument("--gallery", required=True, metavar="G", help="the gallery file (.npz)")
    e.add_argument("--people", metavar="SPEC", help="only these people (s1-s30, 'alice,bob' or a file of names)")
    e.add_argument("--per-person", type=count(1), metavar="N", help="only each person's first N images")
    e.set_defaults(run=_run_enroll)

    s = sub.add_parser("search", help="who is in these images? (1:N against a gallery)",
                       description="The most similar enrolled identities of each image, with their cosine "
                       "similarity; 'unknown' first where the best is below the gallery's threshold.")
    _model_arguments(s)
    s.add_argument("gallery", metavar="G")
    s.add_argument("images", nargs="+", metavar="IMAGE", help="images or folders of images")
    s.add_argument("--top-k", type=count(1), default=1, metavar="K", help="identities per image (default 1)")
    s.add_argument("--threshold", type=float, help="the 'unknown' threshold (default: the gallery's)")
    s.add_argument("--approximate", action="store_true", help="search an HNSW index (the ann extra: faiss-cpu)")
    s.set_defaults(run=_run_search)

    m = sub.add_parser("similarity", help="identity similarity between two folders of faces",
                       description="Cosine similarity of the embeddings of A_DIR's and B_DIR's images, as face "
                       "generation papers report identity preservation: pairs by file name (relative path "
                       "without suffix) where the folders share names, else every A against every B.")
    _model_arguments(m)
    m.add_argument("a_dir", metavar="A_DIR")
    m.add_argument("b_dir", metavar="B_DIR")
    m.add_argument("--all-pairs", action="store_true", help="every A against every B even where names match")
    m.add_argument("--plot", metavar="PNG", help="a histogram of the similarities")
    m.add_argument("--out", metavar="TSV", help="the pairs and their similarity")
    m.set_defaults(run=_run_similarity)


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a face run, checkpoint or (with --model) released file")
    p.add_argument("--model", metavar="ARCH", help="CHECKPOINT is a released LightCNN file of this architecture")
    p.add_argument("--align", action=argparse.BooleanOptionalAction,
                   help="the images are photos: detect and align each face (default: as the checkpoint was trained)")
    p.add_argument("--batch-size", type=count(1), default=64)


def _run_align(args: argparse.Namespace) -> int:
    from lcnn.faces.folder import align_folder

    r = align_folder(args.in_dir, args.out_dir, args.size, args.colour, args.all_faces, args.landmarks)
    print(f"{r.photos} photos, {r.faces} faces found, {r.aligned} aligned -> {args.out_dir}")
    if r.no_face:
        shown = ", ".join(r.no_face[:10]) + (" ..." if len(r.no_face) > 10 else "")
        print(f"no face in {len(r.no_face)} photos (listed in faces.csv): {shown}")
    if r.unreadable:
        print(f"unreadable: {len(r.unreadable)} files (listed in faces.csv): {', '.join(r.unreadable[:10])}")
    return 0


class Embedder:
    """A face checkpoint's embeddings of image files, through its own preprocessing (``transform``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from lcnn.tasks import find_checkpoint, load_task

        path = find_checkpoint(args.checkpoint)
        self.module, _, task = load_task(path, args.model)
        if task.name != "face":
            raise UserError(f"{path}: a {task.name} checkpoint; these commands need a face model")
        if args.align is not None:
            self.module.hparams.align = bool(args.align)
        self.align = bool(self.module.hparams.get("align", False))
        self.transform = self.module.transform(train=False)
        self.batch_size = args.batch_size
        from lcnn.faces.gallery import fingerprint

        self.fingerprint = fingerprint(path, self.module.hparams.model)

    def __call__(self, paths: list[Path]) -> tuple[Any, list[Path], list[str]]:
        """``(embeddings (n, 256) float32, the paths embedded, the messages of those skipped)``; a photo
        without a face (with ``--align``) is skipped with a message, not an error."""
        import numpy as np
        import torch

        from lcnn.faces.aligner import NoFaceError
        from lcnn.tasks.face.verification import embed_faces, face_input

        done, skipped, out = [], [], []
        for start in range(0, len(paths), self.batch_size):
            batch = []
            for p in paths[start : start + self.batch_size]:
                try:
                    batch.append(face_input(self.transform, p))
                    done.append(p)
                except NoFaceError as err:
                    skipped.append(str(err))
            if batch:
                out.append(embed_faces(self.module, torch.stack(batch)))
        emb = np.concatenate(out) if out else np.zeros((0, self.module.model.embedding_dim), np.float32)
        return emb, done, skipped


def _images(items: list[str]) -> list[Path]:
    from lcnn.faces.folder import list_photos

    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths.extend(list_photos(item))
        elif item.is_file():
            paths.append(item)
        else:
            raise UserError(f"{item}: no such image or folder")
    if not paths:
        raise UserError(f"{', '.join(items)}: no images")
    return paths


def _warn_skipped(skipped: list[str]) -> None:
    import sys

    for message in skipped:
        print(f"lcnn: warning: skipped {message}", file=sys.stderr)


def _run_enroll(args: argparse.Namespace) -> int:
    from lcnn.data.faces import list_faces, list_identities, select_people
    from lcnn.faces.gallery import Gallery

    people = select_people(args.people, list_identities(args.people_dir))
    items = list_faces(args.people_dir, people)
    if args.per_person:
        counts: dict[str, int] = {}
        kept = []
        for path, person in items:
            counts[person] = counts.get(person, 0) + 1
            if counts[person] <= args.per_person:
                kept.append((path, person))
        items = kept
    embed = Embedder(args)
    emb, done, skipped = embed([p for p, _ in items])
    _warn_skipped(skipped)
    name = {p: n for p, n in items}
    new = Gallery(emb, [name[p] for p in done], [str(p) for p in done], embed.fingerprint, embed.align)
    gallery = Gallery.load(args.gallery).extend(new) if Path(args.gallery).exists() else new.with_threshold()
    gallery.save(args.gallery)
    print(f"{len(done)} images of {len({name[p] for p in done})} people enrolled; the gallery has {len(gallery)} "
          f"images of {len(gallery.people)} people, threshold {gallery.threshold:.4f} -> {args.gallery}")
    return 0


def _run_search(args: argparse.Namespace) -> int:
    from lcnn.faces.gallery import Gallery

    gallery = Gallery.load(args.gallery)
    embed = Embedder(args)
    if embed.fingerprint != gallery.model:
        raise UserError(f"{args.gallery}: enrolled with {gallery.model}, not this checkpoint ({embed.fingerprint})")
    emb, done, skipped = embed(_images(args.images))
    _warn_skipped(skipped)
    if args.approximate:
        gallery.build_index()
    for path, matches in zip(done, gallery.search(emb, args.top_k, args.threshold)):
        for rank, m in enumerate(matches, 1):
            print(f"{path}\t{rank}\t{m.identity}\t{m.similarity:.4f}\t{m.image}")
    return 0


def _run_similarity(args: argparse.Namespace) -> int:
    from lcnn.faces.similarity import identity_similarity

    embed = Embedder(args)
    result = identity_similarity(embed, Path(args.a_dir), Path(args.b_dir), args.all_pairs, args.plot, args.out)
    print(result)
    return 0
