"""Checks run by scripts/check-wheel.sh inside a fresh venv that holds the built wheel.

    python wheel_smoke.py contents DIST_DIR SRC_LIST  the wheel ships every file under src/
    python wheel_smoke.py installed EXTRA VERSION      with the venv's python: the install works

Only the standard library (and the installed package) is used, so a bare venv can run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

PACKAGE = "vllm_multimodal_embeddings"
FRAMEWORKS = ("langchain_core", "llama_index")
# Which frameworks each extra installs; "none" is the package alone.
EXTRA_FRAMEWORKS = {
    "none": (),
    "langchain": ("langchain_core",),
    "llama-index": ("llama_index",),
    "test": FRAMEWORKS,
}
ADAPTERS = {"langchain_core": "langchain", "llama_index": "llama_index"}


def fail(message: str) -> None:
    """Stop with ``message``: the caller's ``set -e`` ends the check."""
    sys.exit(f"wheel check FAILED: {message}")


def check_contents(dist_dir: Path, src_list: Path) -> None:
    """The wheel holds every file git sees under src/ (py.typed, *.jinja, ...) and nothing else."""
    wanted = {
        line.removeprefix("src/")
        for line in src_list.read_text().splitlines()
        if line.strip() and Path(line).is_file()
    }
    (wheel,) = dist_dir.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.startswith(f"{PACKAGE}/")}
    if missing := sorted(wanted - shipped):
        fail(f"{wheel.name} lacks {missing}")
    if extra := sorted(shipped - wanted):
        fail(f"{wheel.name} ships files git does not track under src/: {extra}")
    with zipfile.ZipFile(wheel) as zf:
        licenses = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    if not licenses:
        fail(f"{wheel.name} lacks the LICENSE text")
    (sdist,) = dist_dir.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    needed = {f"src/{n}" for n in wanted}
    needed |= {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"}
    if missing := sorted(needed - names):
        fail(f"{sdist.name} lacks {missing}")
    print(f"contents ok: {len(wanted)} package files in {wheel.name}; {sdist.name} complete")


def run_cli(*args: str) -> str:
    """``vllm-mm-embed ARGS`` from this venv's bin folder; its stdout."""
    exe = Path(sys.executable).with_name("vllm-mm-embed")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        fail(f"vllm-mm-embed {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def check_installed(extra: str, version: str) -> None:
    """Import from site-packages, import no framework, and run the CLI."""
    import vllm_multimodal_embeddings as pkg  # imported here: the contents check runs without it

    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    package_dir = Path(pkg.__file__).resolve().parent
    if package_dir != purelib / PACKAGE:
        fail(f"imported {package_dir}, not the installed wheel in {purelib}")
    if loaded := sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS):
        fail(f"`import {PACKAGE}` imported {loaded}")
    if pkg.__version__ != version:
        fail(f"__version__ is {pkg.__version__}, the wheel says {version}")
    # The extra installs its framework and only that one, and the matching adapter imports.
    for framework in FRAMEWORKS:
        present = find_spec(framework) is not None
        if present != (framework in EXTRA_FRAMEWORKS[extra]):
            fail(f"[{extra}]: {framework} {'present' if present else 'missing'}")
        if present:
            __import__(f"{PACKAGE}.{ADAPTERS[framework]}")

    if (out := run_cli("--version")) != f"vllm-mm-embed {version}\n":
        fail(f"--version printed {out!r}")
    for profile in ("gpu", "reranker"):
        args = json.loads(run_cli("server-args", "--profile", profile, "--format", "json"))
        template = Path(args[args.index("--chat-template") + 1])
        if not (template.is_file() and template.resolve().is_relative_to(package_dir)):
            fail(f"server-args --profile {profile} names {template}, not a file in {package_dir}")
    # serve-cpu runs the checkpoint builders as scripts from the installed package folder.
    for script in ("tiny_checkpoint.py", "tiny_reranker.py"):
        if not (package_dir / "testing" / script).is_file():
            fail(f"testing/{script} is missing from the wheel")
    print(f"[{extra}] ok: {package_dir}, version {version}, template {template.name}")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "contents":
        check_contents(Path(rest[0]), Path(rest[1]))
    elif command == "installed":
        check_installed(rest[0], rest[1])
    else:
        fail(f"unknown command {command!r}")
