"""`neo data ...`: validate a dataset, convert a public one, generate the demo world."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from neo.data.catalog import CatalogError


def add_data_parser(subparsers: Any) -> None:
    """Register `neo data` and its sub-commands on the top-level `neo` parser."""
    data = subparsers.add_parser(
        "data",
        help="validate, convert or generate datasets",
        description="Work with datasets in neo's canonical catalog format.",
    )
    sub = data.add_subparsers(dest="data_command", required=True)

    validate = sub.add_parser(
        "validate",
        help="check a dataset directory and print a summary",
        description="Check every table of a dataset; exit 1 with file:line: problem on the first error.",
    )
    validate.add_argument("dir", type=Path, help="dataset directory (with dataset.yaml)")
    validate.add_argument("--json", action="store_true", help="print the summary as JSON")
    validate.set_defaults(handler=_validate)

    convert = sub.add_parser(
        "convert",
        help="convert a public dataset into the canonical format",
        description="amazon: P5/LETTER Amazon 2018 layout (items.json + sequences.txt). "
        "s3rec: S3-Rec/TIGER layout (sequences.txt, 1-based + item2attributes.json).",
    )
    convert.add_argument("--format", required=True, choices=("amazon", "s3rec"), help="source layout")
    convert.add_argument("--src", required=True, type=Path, help="source directory")
    convert.add_argument("--out", required=True, type=Path, help="output dataset directory")
    convert.add_argument(
        "--sids",
        type=Path,
        help="published SIDs {item key: [codes]} to carry along (s3rec keys are 0-based, i.e. item id - 1)",
    )
    convert.add_argument(
        "--table-format",
        default="parquet",
        choices=("jsonl", "parquet"),
        help="file format of the written tables (default parquet: loads fastest)",
    )
    convert.set_defaults(handler=_convert)

    world = sub.add_parser(
        "world",
        help="generate the synthetic audio-streaming demo world",
        description="Shows, episodes, audiobooks and artists with learnable user behaviour.",
    )
    world.add_argument("--out", required=True, type=Path, help="output dataset directory")
    world.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    world.add_argument(
        "--scale",
        default="small",
        help="tiny | small | medium | an item count such as 1000000 (default small)",
    )
    world.add_argument(
        "--table-format",
        default="auto",
        choices=("auto", "jsonl", "parquet"),
        help="auto: JSONL for named scales, Parquet for item counts",
    )
    world.set_defaults(handler=_world)


def _fail(message: str) -> int:
    print(f"neo data: {message}", file=sys.stderr)
    return 1


def _validate(args: argparse.Namespace) -> int:
    from neo.data.validate import validate

    try:
        summary = validate(args.dir)
    except CatalogError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        items = ", ".join(f"{n} {t}" for t, n in summary["items"].items())
        print(
            f"{args.dir}: valid. {summary['users']} users, {summary['interactions']} interactions, "
            f"items: {items}, {summary['queries']} queries"
        )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from neo.data.convert import convert

    start = time.perf_counter()
    try:
        convert(
            args.format, args.src, args.out, sids=args.sids, progress=True, table_format=args.table_format
        )
    except (CatalogError, ValueError) as exc:
        return _fail(str(exc))
    print(
        f"wrote {args.out} in {time.perf_counter() - start:.1f}s; check it with `neo data validate {args.out}`"
    )
    return 0


def _world(args: argparse.Namespace) -> int:
    from neo.data.world import generate_world

    start = time.perf_counter()
    try:
        generate_world(
            args.out, seed=args.seed, scale=args.scale, table_format=args.table_format, progress=True
        )
    except ValueError as exc:
        return _fail(str(exc))
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f}s")
    return 0
