"""The `neo` command: `neo data ...`, `neo run RECIPE [hydra overrides]`, `neo serve ...`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

RECIPES_PACKAGE = "neo.recipes"


def available_recipes() -> list[str]:
    package = importlib.import_module(RECIPES_PACKAGE)
    folder = Path(package.__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def rewrite_overrides(overrides: list[str]) -> list[str]:
    """Let `data=<dataset dir>` name a directory: it becomes `data=dir data.path=<abs dir>`."""
    out = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key == "data" and ("/" in value or os.path.isdir(value)):
            path = Path(value).expanduser().resolve()
            if not path.is_dir():
                raise SystemExit(f"neo run: data={value}: no such dataset directory")
            out += ["data=dir", f"data.path={path}", f"data.name={path.name}"]
        else:
            out.append(override)
    return out


def run_recipe(recipe: str, overrides: list[str]) -> int:
    recipes = available_recipes()
    if recipe not in recipes:
        print(f"neo run: unknown recipe {recipe!r}; available: {', '.join(recipes)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{RECIPES_PACKAGE}.{recipe}")
    argv = sys.argv
    sys.argv = [f"neo run {recipe}", *rewrite_overrides(overrides)]
    try:
        module.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from neo.data.cli import add_data_parser

    add_data_parser(sub)

    run = sub.add_parser("run", help="run a Hydra recipe from recipes/ (e.g. `neo run train stage=align`)",
                         description="Run recipes/RECIPE.py with Hydra overrides. `data=<dir>` may name a dataset "
                                     "directory. Recipes: " + ", ".join(available_recipes()))
    run.add_argument("recipe")
    run.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides, e.g. model=tiny stage=align")
    run.set_defaults(handler=lambda args: run_recipe(args.recipe, args.overrides))

    serve = sub.add_parser("serve", help="serve a checkpoint over HTTP (same as `neo run serve ...`)")
    serve.add_argument("overrides", nargs=argparse.REMAINDER, help="e.g. checkpoint=outputs/demo/instruct port=8000")
    serve.set_defaults(handler=lambda args: run_recipe("serve", args.overrides))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
