"""Imports flow one way: configuration, then environments and the model, then
the worker, the backends, the agent and the CLI (docs/a3c.md, "Where the code
is"). A module imports nothing from a layer above its own."""

import ast
from pathlib import Path

import mathy_a3c

LAYERS = [
    {
        "config",
        "types",
        "policy",
        "counting",
        "curriculum",
        "returns",
        "quiet",
        "pipes",
    },
    {"event_file"},
    {"runtime", "interrupts", "envs", "gym_envs", "tasks", "numpy_actor"},
    {"flat_adam", "networks", "losses", "numpy_gradients", "parameter_server"},
    {"checkpoint", "folder"},
    {"search", "solvable"},
    {"model"},
    {"turn", "worker", "callbacks", "inference", "evaluation"},
    {"backends", "ray_backend", "ray_lines", "worker_process", "ray_worker"},
    {"agent"},
    {"cli", "__main__"},
]


def _layer(module: str) -> int:
    for number, layer in enumerate(LAYERS):
        if module in layer:
            return number
    raise AssertionError(f"mathy_a3c.{module} is in no layer: add it to LAYERS")


def _imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("mathy_a3c."):
                found.add(node.module.split(".")[1])
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    package = Path(mathy_a3c.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    assert modules == set().union(*LAYERS)
    upward = [
        f"{name} imports {other}"
        for name in sorted(modules)
        for other in sorted(_imports(package / f"{name}.py") & modules)
        if _layer(other) > _layer(name)
    ]
    assert not upward


def test_only_public_apis_of_tensorflow_keras_and_mathy_are_used():
    """A private name can change in any release: an upgrade must not break
    training, nor make saved models unreadable. The package reads no
    ``_private`` attribute of anything but itself (``self``, ``cls``) and
    imports no private module."""
    # Documented names that start with an underscore: namedtuples' API, os._exit.
    public = {"_replace", "_asdict", "_fields", "_make", "_exit"}
    package = Path(mathy_a3c.__file__).parent
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                name, base = node.attr, node.value
                private = name.startswith("_") and not name.startswith("__")
                own = isinstance(base, ast.Name) and base.id in ("self", "cls")
                if private and not own and name not in public:
                    found.append(f"{path.name}:{node.lineno}: .{name}")
            elif isinstance(node, ast.ImportFrom) and node.module:
                if ".python" in node.module or ".src" in node.module:
                    found.append(f"{path.name}:{node.lineno}: from {node.module}")
    assert not found
