"""``kiln inspect FILE``: what a Kiln file holds, read without running any of it.

It knows the three kinds of files Kiln writes: shared libraries from ``kiln.aot_compile``
(signature, dynamic dims and ranges, CPU features, sizes, checksums: read from the manifest
trailer, never ``dlopen``-ed), programs saved by ``kiln.export.save``, and compiled artifacts
(compile-cache entries, precompiled functions and cache bundles: the container header).

>>> from click.testing import CliRunner
>>> from kiln.cli import main
>>> CliRunner().invoke(main, ["inspect", "--help"]).exit_code
0
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import click


def artifact_record(path: pathlib.Path) -> dict[str, Any]:
    """The checked header of a compiled-artifact container (sections are hashed, not run)."""
    from kiln.backends.container import read

    art = read(path.read_bytes(), what=str(path))
    header = art.header
    return {
        "file": str(path), "kind": f"compiled artifact ({art.kind})",
        "format_version": art.version, "kiln_version": header.get("kiln_version"),
        "platform": header.get("platform"), "cpu_features": header.get("cpu_features"),
        "signed": art.signed,
        "sections": [{"name": s["name"], "bytes": s["length"], "sha256": s["sha256"]}
                     for s in header["sections"]],
    }


def file_record(path: pathlib.Path) -> dict[str, Any]:
    """The record of any Kiln file: an artifact container, an export library or program."""
    from kiln.backends.container import MAGIC
    from kiln.export.inspect import record

    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head == MAGIC:
        return artifact_record(path)
    return record(str(path))


def render_artifact(rec: dict[str, Any]) -> str:
    lines = [f"{rec['file']}: {rec['kind']}",
             f"  format version {rec['format_version']}, written by Kiln {rec['kiln_version']}",
             f"  platform: {rec['platform']}, CPU features: "
             f"{', '.join(rec['cpu_features']) or 'none'}",
             f"  signed: {'yes' if rec['signed'] else 'no (data only)'}"]
    for s in rec["sections"]:
        lines.append(f"  section {s['name']}: {s['bytes']:,} bytes, sha256 {s['sha256'][:16]}…")
    return "\n".join(lines)


@click.command("inspect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON")
def inspect_command(file: pathlib.Path, as_json: bool) -> None:
    """Show what FILE holds: a library from kiln.aot_compile, an exported program, or a
    compiled artifact (cache entry, precompiled function, cache bundle)."""
    from kiln.errors import KilnError
    from kiln.export.inspect import render

    try:
        rec = file_record(file)
    except (KilnError, OSError) as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(rec, indent=2, sort_keys=True))
    elif rec["kind"].startswith("compiled artifact"):
        click.echo(render_artifact(rec))
    else:
        click.echo(render(rec))


COMMANDS = [inspect_command]
