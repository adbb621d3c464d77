"""The shape of the package: dependencies run one way (also those imported inside functions), no import cycle,
imports at the top of a module except where a listed reason applies, no module over 400 lines, a command line
that starts without torch, and configs that refuse what they do not know."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lcnn.errors import UserError
from lcnn.tasks import TASKS, get_task, load_task

SRC = Path(__file__).resolve().parents[1] / "src" / "lcnn"
MODULES = sorted(
    ".".join(("lcnn", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
    for p in SRC.rglob("*.py")
)

# Which packages a package may import at module level (lcnn.errors, lcnn.io and lcnn.config are free for all).
# Layers, then models, then inference; data and audio never see models or tasks, nor does the scoring engine
# (score, on data, audio and metrics: the engine and the score files; runs for the lock of its output, speed for
# the CPU's threads); tasks,
# train, cli and serve on top.
ALLOWED = {
    "lcnn.layers": set(),
    "lcnn.speed": set(),
    "lcnn.losses": set(),
    "lcnn.metrics": {"lcnn.metrics"},
    "lcnn.models": {"lcnn.layers", "lcnn.models"},
    "lcnn.inference": {"lcnn.layers", "lcnn.models", "lcnn.inference"},
    "lcnn.audio": {"lcnn.audio"},
    "lcnn.faces": {"lcnn.faces", "lcnn.metrics"},
    "lcnn.data": {"lcnn.audio", "lcnn.data", "lcnn.faces"},
    "lcnn.score": {"lcnn.audio", "lcnn.data", "lcnn.metrics", "lcnn.runs", "lcnn.score", "lcnn.speed"},
    "lcnn.plots": set(),
    "lcnn.export": set(),
    "lcnn.probe": {"lcnn.models", "lcnn.inference", "lcnn.speed", "lcnn.data"},
    "lcnn.precision": {"lcnn.inference", "lcnn.speed", "lcnn.probe"},
    "lcnn.benchmark": {"lcnn.models", "lcnn.speed", "lcnn.probe", "lcnn.precision"},
}
FREE = {"lcnn.errors", "lcnn.io", "lcnn.config"}


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


# Imports inside a function that go against the flow, each with its reason (the only ones).
UPWARD = {("lcnn.probe", "lcnn.precision"): "the policy's names kept readable where they were (lcnn.probe.choose)"}


def _imports(module: str, nested: bool = False) -> set[str]:
    """The lcnn modules ``module`` imports when it is imported, or with ``nested`` those it imports inside its
    functions (and classes), but for the :data:`UPWARD` ones."""
    found = {name for name, _ in _import_nodes(module, nested) if name.startswith("lcnn")}
    return {name for name in found if (module, name) not in UPWARD} if nested else found


def _module_level_imports(module: str) -> set[str]:
    return _imports(module)


def _import_nodes(module: str, nested: bool) -> list[tuple[str, int]]:
    """``(imported module, line)`` of every import at the top of ``module`` or, with ``nested``, below it."""
    path = SRC.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and (id(n) in top) != nested]
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:  # `from lcnn.models import lcnn` imports the submodule lcnn.models.lcnn
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule if submodule in MODULES else node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
    return found


def test_dependencies_run_one_way() -> None:
    for module in MODULES:
        allowed = ALLOWED.get(_package(module))
        if allowed is None:
            continue  # tasks, train, cli, serve: the top of the flow
        for imported in _imports(module) | _imports(module, nested=True):  # a lazy import hides no dependency
            target = _package(imported)
            assert imported in FREE or target in allowed or imported == module, f"{module} imports {imported}"


def test_no_import_cycle() -> None:
    """Not even through an import inside a function (the tasks' registry and a spoof calibration had one)."""
    graph = {m: {i for i in _imports(m) | _imports(m, nested=True) if i in MODULES} for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for child in graph[module]:
            visit(child, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


def test_every_module_imports() -> None:
    for module in MODULES:
        importlib.import_module(module)


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)


# Where an import of lcnn or of the heavy libraries may sit inside a function, and why; everywhere else a module
# imports what it uses at its top, where a reader (and test_dependencies_run_one_way) sees it.
LAZY = {  # a module, or with .* every module of a package
    "lcnn.cli.*": "the parser builds without torch; each command imports what it runs",
    "lcnn.serve.command": "`lcnn serve`'s parser side imports neither FastAPI nor torch",
    "lcnn.tasks": "the registry of the tasks' declarations, which the parser reads",
    "lcnn.tasks.base": "the base class of those declarations",
    "lcnn.released": "`lcnn pretrained list` reads its table without Lightning; convert and fetch import what they run",
    "lcnn.faces.similarity": "pyplot only for the histogram of --plot (its home would be lcnn.plots)",
}
HEAVY = ("lcnn", "torch", "lightning", "numpy", "scipy", "matplotlib")  # the optional extras may come lazily


def test_imports_sit_at_the_top_but_for_a_listed_reason() -> None:
    counts: dict[str, int] = {}
    hidden = []
    for module in MODULES:
        nested = _import_nodes(module, nested=True)
        counts[module] = len({line for _, line in nested})  # statements
        if not any(module == m.removesuffix(".*") or m.endswith(".*") and module.startswith(m[:-1]) for m in LAZY):
            hidden += [f"{module}, line {line}: {name}" for name, line in nested
                       if name.split(".")[0] in HEAVY and (module, name) not in UPWARD]  # fmt: skip
    print(f"function-level imports: {sum(counts.values())}, "
          f"{sum(n for m, n in counts.items() if m.startswith('lcnn.cli'))} of them in lcnn.cli")
    assert not hidden, "imported inside a function with no reason in LAZY: " + "; ".join(hidden)


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_command_line_help_imports_neither_torch_nor_lightning() -> None:
    script = """
import contextlib, io, sys
from lcnn.cli import main
for argv in (["--help"], ["--version"], ["train", "--task", "spoof", "--help"], ["evaluate", "--task", "face",
             "--help"], ["predict", "--help"], ["verify", "--help"], ["export", "--help"], ["check-scores", "--help"],
             ["calibrate", "--help"], ["fuse", "--help"]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit:
            pass
    assert out.getvalue(), argv
heavy = sorted(m for m in ("torch", "lightning", "numpy") if m in sys.modules)
print(heavy)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_common_options_are_declared_once_and_spelled_one_way() -> None:
    """--devices parses alike for train and score (they share the declaration); --workers points to the one
    spelling of every command."""
    from lcnn.cli import build_parser

    for argv in (["train"], ["score", "ckpt", "input"]):
        parser = build_parser("spoof")
        assert parser.parse_args([*argv, "--devices", "2"]).devices == 2
        assert parser.parse_args([*argv, "--devices", "0,1"]).devices == "0,1"
        with pytest.raises(UserError, match="--devices: must be at least 1, got 0"):
            parser.parse_args([*argv, "--devices", "0"])
        with pytest.raises(UserError, match=r"^--workers is spelled --num-workers \(see lcnn \w+ --help\)$"):
            parser.parse_args([*argv, "--workers", "2"])
    commands = build_parser("spoof")._subparsers._group_actions[0].choices
    flags = {name: {f for a in p._actions for f in a.option_strings} for name, p in commands.items()}
    for name in ("train", "score"):
        assert {"--accelerator", "--devices", "--strategy", "--precision", "--num-workers"} <= flags[name]
    assert "--num-workers" in flags["degrade"] and not any("--workers" in f for f in flags.values())


def test_evaluate_help_lists_the_task_options_only() -> None:
    def help_of(*argv: str) -> str:
        return subprocess.run([sys.executable, "-m", "lcnn", *argv, "--help"], capture_output=True, text=True,
                              check=True, timeout=60).stdout  # fmt: skip

    face = help_of("evaluate", "--task", "face")
    assert "--pairs" in face and "--split" not in face and "--test-time-flip" not in face
    spoof = help_of("evaluate", "--task", "spoof")
    assert "--split" in spoof and "--asv-scores" in spoof and "--pairs" not in spoof
    assert "Task options: lcnn evaluate --task {classify,spoof,face} --help" in help_of("evaluate")
    assert "--loss" in help_of("train", "--task", "face") and "--frontend" not in help_of("train", "--task", "face")


@pytest.mark.parametrize("task", list(TASKS))
def test_every_recipe_resolves_to_known_settings(task: str) -> None:
    spec = get_task(task)
    schema = spec.settings()
    for recipe, per_data in spec.recipes.items():
        for data in per_data:
            cfg = spec.resolve(None if data == "default" else data, recipe)
            assert set(cfg) == set(schema), (recipe, data)


def test_an_unknown_setting_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(UserError, match=r"unknown setting 'weight_decy' \(did you mean 'weight_decay'\?\)"):
        get_task("classify").resolve("digits", weight_decy=0.1)
    with pytest.raises(UserError, match="unknown recipe 'fast' for task spoof"):
        get_task("spoof").resolve("minispoof", "fast")
    with pytest.raises(UserError, match="ImageDataModule: val_fraction must be between 0 and 1"):
        get_task("classify").build(get_task("classify").resolve("digits", val_fraction=1.5))


def test_one_default_per_setting() -> None:
    """The defaults the old hand-written setup functions disagreed on now come from one signature."""
    spoof, face = get_task("spoof").resolve("asvspoof2019-la"), get_task("face").resolve("orl")
    assert spoof["schedule"] == "step:10:0.5" and spoof["model"] == "lcnn_lstm" and spoof["frontend"] == "lfcc"
    assert (face["weight_decay"], face["lr_multipliers"]) == (1e-4, True)
    assert get_task("face").resolve("folder:x")["people"] is None


# Checkpoints written before the Task classes (hyper_parameters and lcnn_config as lcnn 0.1.0 stored them).
OLD = {
    "classify": (
        {"model": "lcnn", "num_classes": 10, "input_shape": (1, 28, 28), "dropout": 0.75, "classes": list("0123456789"),
         "lr": 0.001, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none", "label_smoothing": 0.0,
         "augment": None, "channels_last": True, "bn_momentum": None, "test_time_flip": False},
        {"task": "classify", "recipe": "article", "seeds": [0], "accelerator": "auto", "devices": 1, "strategy": "auto",
         "precision": "auto", "num_workers": 0, "data": "digits", "model": "lcnn", "dropout": 0.75, "val_fraction": 0.2,
         "epochs": 30, "batch_size": 32, "lr": 0.001, "patience": 5, "out": "/somewhere/digits"},
    ),
    "spoof": (
        {"model": "lcnn_lstm", "n_features": 128, "frames": None, "loss": "sigmoid", "dropout": None,
         "frontend": {"name": "spec", "sample_rate": 16000, "n_fft": 512, "win_length": 320, "hop_length": 160,
                      "window": "hann", "f_max": 4000.0, "pre_emphasis": None, "trim_silence": True},
         "lr": 0.0003, "optimizer": "adam", "weight_decay": 0.0, "schedule": "step:10:0.5", "channels_last": True},
        {"task": "spoof", "recipe": "article", "seeds": [0, 1, 2], "data": "minispoof", "model": "lcnn_lstm",
         "frontend": "spec", "f_max": 4000.0, "trim_silence": True, "loss": "sigmoid", "frames": 64, "epochs": 20,
         "batch_size": 64, "patience": 8, "data_dir": "/somewhere/minispoof", "cache_dir": "/somewhere/cache"},
    ),
    "face": (
        {"model": "lightcnn9", "num_classes": 3, "classes": ["p0", "p1", "p2"], "loss": "amsoftmax", "margin": None,
         "scale": None, "dropout": None, "lr": 0.001, "optimizer": "adamw", "momentum": 0.9, "weight_decay": 0.0005,
         "schedule": "onecycle", "lr_multipliers": False, "image_size": 160, "augment": {"rotate": 15, "scale": 0.15},
         "init": None, "weight_init": "default"},
        {"task": "face", "recipe": "small", "data": "folder:/somewhere/faces", "model": "lightcnn9", "margin": None,
         "people": None, "image_size": 160, "val_fraction": 0.2, "epochs": 40, "batch_size": 32},
    ),
}  # fmt: skip


@pytest.mark.parametrize("task", list(OLD))
def test_checkpoints_of_lcnn_0_1_still_load(task: str, tmp_path: Path) -> None:
    hparams, config = OLD[task]
    module = get_task(task).restore(dict(hparams), "old")
    path = tmp_path / "old.ckpt"
    torch.save({"lcnn_task": task, "hyper_parameters": hparams, "lcnn_config": config,
                "state_dict": module.state_dict(), "epoch": 3}, path)  # fmt: skip
    loaded, cfg, spec = load_task(path)
    assert spec.name == task and cfg == config
    torch.testing.assert_close(loaded.state_dict(), module.state_dict(), rtol=0, atol=0, equal_nan=True)
    broken = {**hparams, "model": "no_such_model"}
    torch.save({"lcnn_task": task, "hyper_parameters": broken, "state_dict": {}}, path)
    with pytest.raises(UserError, match=r"old.ckpt: its stored hyper_parameters do not build a .* unknown model"):
        load_task(path)


def test_a_run_config_names_its_files_absolutely(tmp_path, monkeypatch) -> None:
    """What a config names by a path relative to the working directory is made absolute, so that a resumed or
    moved run finds it from anywhere: data folders, protocols, a face run's file of people, augment folders."""
    (tmp_path / "noise").mkdir()
    (tmp_path / "people.txt").write_text("s1\n")
    monkeypatch.chdir(tmp_path)
    spoof = get_task("spoof").absolute_paths({"data_dir": ".", "protocol": ["train=people.txt"],
                                              "augment": ["noise:noise@snr=0,5", "rawboost:3", "reverb:noise"]})
    assert spoof["data_dir"] == str(tmp_path) and spoof["protocol"] == [f"train={tmp_path / 'people.txt'}"]
    assert spoof["augment"] == [f"noise:{tmp_path / 'noise'}@snr=0,5", "rawboost:3", f"reverb:{tmp_path / 'noise'}"]
    face = get_task("face").absolute_paths({"people": "people.txt", "data_dir": None})
    assert face["people"] == str(tmp_path / "people.txt")
    assert get_task("face").absolute_paths({"people": "s1-s30"})["people"] == "s1-s30"  # names, not a file
