"""A grid spec: a TOML file that declares axes, and the cells (command lines) they make.

::

    [grid]
    command = "run"                  # the command each cell runs: run or tcp
    title = "frames per rcvbuf"

    [traffic]                        # named traffic inputs (captures are relative to this file)
    full = "fixed:1514"
    office = "pcap:captures/office.pcap"

    [fixed]                          # options every cell gets: the command's long options
    traffic = "full"
    count = 2000

    [axes]                           # each axis a list; the cells are their product
    kernel = ["6.1", "6.9", "6.12", "6.18"]
    rcvbuf = [4096, 8192, 16384]
    opt.copybreak = [0, 256]         # one key of a KEY=VALUE option
    nic = [                          # a named value that sets several options at once
      { name = "ice legacy", driver = "ice", opt = { rx = "legacy" } },
      { name = "tun", driver = "tun" },
    ]

    [report]                         # defaults for skbsim report
    metric = "delivered"
    heatmap = ["kernel", "nic"]
    lines = "rcvbuf"

Option names are the command's, with dashes or underscores (``app-rate`` or
``app_rate``).  An axis value overrides ``[fixed]``; an option that is both an
axis and fixed is an error.  Every cell is parsed by the command's own parser
and checked before the grid starts.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shlex
import tomllib
from dataclasses import dataclass, field

from skbsim.errors import InputError
from skbsim.files import read_bounded, shown
from skbsim.grid.cells import CellCommand, cell_command

#: a spec is a few KiB; a larger file is the wrong file
MAX_SPEC_BYTES = 1 << 20

SECTIONS = ("grid", "traffic", "fixed", "axes", "report")
REPORT_KEYS = ("metric", "heatmap", "lines")
#: column prefixes of a row that are not axes
RESERVED = ("cell", "result")


@dataclass
class Axis:
    name: str
    #: the axis's value in each row: the value itself, or a named value's name; in spec order
    labels: list
    #: per label, the options it sets
    settings: list[dict]


@dataclass
class Cell:
    index: int
    key: str
    #: axis name -> label
    axes: dict
    argv: list[str]

    def command_line(self, command: str) -> str:
        return shlex.join(["skbsim", command, *self.argv])


@dataclass
class GridSpec:
    path: str
    text: str
    command: str
    title: str
    axes: list[Axis]
    cells: list[Cell]
    report: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        """What the Parquet file keeps about the grid (for the report and for --resume)."""
        return {"command": self.command, "title": self.title, "spec": self.path,
                "axes": [{"name": a.name, "values": a.labels} for a in self.axes], "report": self.report,
                "cells": len(self.cells)}


def load_spec(path: str) -> GridSpec:
    """Read and check a grid spec; every error is one InputError line naming the file."""
    raw = read_bounded(path, MAX_SPEC_BYTES, "")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"{shown(path)}: not a valid TOML file: {err}") from None
    try:
        return _build(path, text, data)
    except InputError as err:
        raise InputError(f"{shown(path)}: {err}") from None


def _build(path: str, text: str, data: dict) -> GridSpec:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown section [{unknown[0]}] (known: {', '.join(SECTIONS)})")
    grid = _table(data, "grid")
    _only(grid, ("command", "title"), "[grid]")
    command = cell_command(str(grid.get("command", "run")))
    base = os.path.dirname(os.path.abspath(path))
    traffic = _table(data, "traffic")
    for name, value in traffic.items():
        if not isinstance(value, str):
            raise InputError(f"[traffic] {name} must be a traffic string such as \"pcap:FILE\"")
    params = command.parameters()
    fixed = {}
    for name, value in _table(data, "fixed").items():
        fixed.update(_setting(command, params, name, value, "[fixed]"))
    declared = []
    for name, values in _table(data, "axes").items():
        if isinstance(values, dict) and name.replace("-", "_") in command.keyed:
            declared.extend((f"{name}.{key}", v) for key, v in values.items())  # opt.rx = [...] in TOML
        else:
            declared.append((name, values))
    axes = [_axis(command, params, name, values) for name, values in declared]
    for axis in axes:
        if axis.name in params and axis.name in fixed:
            raise InputError(f"{axis.name} is both an axis and in [fixed]")
    report = _table(data, "report")
    _only(report, REPORT_KEYS, "[report]")
    _check_report(report, [a.name for a in axes])

    cells: list[Cell] = []
    seen: dict[str, Cell] = {}
    for index, combo in enumerate(itertools.product(*(range(len(a.labels)) for a in axes))):
        settings = dict(fixed)
        labels = {}
        for axis, i in zip(axes, combo):
            labels[axis.name] = axis.labels[i]
            for name, value in axis.settings[i].items():
                settings[name] = {**settings[name], **value} if name in command.keyed and name in settings else value
        cell_name = " ".join(f"{k}={v}" for k, v in labels.items()) or "the only cell"
        try:
            argv = _argv(command, params, settings, traffic, base)
            command.check(command.parse(argv))
        except InputError as err:
            raise InputError(f"cell {cell_name}: {err}") from None
        key = hashlib.sha256(json.dumps([command.name, argv]).encode()).hexdigest()[:16]
        if key in seen:
            raise InputError(f"cells {' '.join(f'{k}={v}' for k, v in seen[key].axes.items())} and {cell_name} "
                             "are the same run")
        cell = Cell(index, key, labels, argv)
        seen[key] = cell
        cells.append(cell)
    title = grid.get("title", os.path.splitext(os.path.basename(path))[0])
    if not isinstance(title, str):
        raise InputError("[grid] title must be a string")
    return GridSpec(path, text, command.name, title, axes, cells, report)


def _table(data: dict, name: str) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InputError(f"{name} must be a table ([{name}])")
    return value


def _only(table: dict, keys: tuple, where: str) -> None:
    for key in table:
        if key not in keys:
            raise InputError(f"unknown key {key!r} in {where} (known: {', '.join(keys)})")


def _param(command: CellCommand, params: dict, name: str, where: str) -> str:
    dest = name.replace("-", "_")
    if dest not in params:
        known = ", ".join(sorted(params))
        raise InputError(f"{where}: {name!r} is not an option of 'skbsim {command.name}' (known: {known})")
    return dest


def _setting(command: CellCommand, params: dict, name: str, value, where: str) -> dict:
    """One option's value as {dest: value}; a KEY=VALUE option's keys as a table."""
    head, dot, key = name.partition(".")
    dest = _param(command, params, head if dot else name, where)
    if dest in command.keyed:
        if dot:
            return {dest: {key: value}}
        if not isinstance(value, dict):
            raise InputError(f"{where}: {name} takes a table of KEY = VALUE, e.g. {name} = {{ rx = \"legacy\" }}")
        return {dest: dict(value)}
    if dot:
        raise InputError(f"{where}: {name!r}: only {', '.join(sorted(command.keyed))} take KEY subnames")
    return {dest: value}


def _axis(command: CellCommand, params: dict, name: str, values) -> Axis:
    where = f"axis {name}"
    if any(name == p or name.startswith(p + ".") for p in RESERVED):
        raise InputError(f"{where}: names starting with {' or '.join(p + '.' for p in RESERVED)} are reserved")
    if not isinstance(values, list) or not values:
        raise InputError(f"{where} must be a non-empty list of values")
    labels, settings = [], []
    for value in values:
        if isinstance(value, dict):
            if not isinstance(value.get("name"), str):
                raise InputError(f"{where}: a table value needs a name = \"...\" (its label in the results)")
            labels.append(value["name"])
            setting: dict = {}
            for key, item in value.items():
                if key != "name":
                    setting.update(_setting(command, params, key, item, f"{where} value {value['name']!r}"))
            settings.append(setting)
        else:
            labels.append(value)
            settings.append(_setting(command, params, name, value, where))
    if len({type(label) for label in labels}) > 1:
        labels = [str(label) for label in labels]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise InputError(f"{where} lists {label!r} twice")
    axis_name = name.replace("-", "_") if name.partition(".")[0].replace("-", "_") in params else name
    return Axis(axis_name, labels, settings)


def _check_report(report: dict, axes: list[str]) -> None:
    metric = report.get("metric")
    if metric is not None and not (isinstance(metric, str) or (isinstance(metric, list) and metric
                                                                and all(isinstance(m, str) for m in metric))):
        raise InputError("[report] metric must be a result name or a list of them")
    chosen = list(report.get("heatmap", []))
    if "heatmap" in report and (not isinstance(report["heatmap"], list) or len(chosen) != 2):
        raise InputError("[report] heatmap must list two axes")
    if "lines" in report:
        chosen.append(report["lines"])
    for name in chosen:
        if name not in axes:
            raise InputError(f"[report] {name!r} is not an axis (axes: {', '.join(axes) or 'none'})")


def _argv(command: CellCommand, params: dict, settings: dict, traffic: dict, base: str) -> list[str]:
    """The cell's command line, options in the parser's order, KEY=VALUE keys sorted."""
    argv: list[str] = []
    positionals: list[str] = []
    for dest, action in params.items():
        if dest not in settings:
            continue
        value = settings[dest]
        if dest == "traffic" and isinstance(value, str) and value in traffic:
            value = traffic[value]
        if dest in command.keyed:
            values = [f"{k}={_text(v, dest)}" for k, v in sorted(value.items())]
        elif isinstance(value, list):
            if not (isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")):
                raise InputError(f"{dest} takes one value, not a list")
            values = [_text(v, dest) for v in value]
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise InputError(f"{dest} is a switch: true or false")
            if value == isinstance(action, argparse._StoreTrueAction):
                argv.append(action.option_strings[-1])
            continue
        else:
            values = [_text(value, dest)]
        values = [command.resolve_paths(dest, v, base) for v in values]
        if not action.option_strings:
            positionals.extend(values)
            continue
        flag = max(action.option_strings, key=len)
        for v in values:
            argv.extend((flag, v))
    return argv + positionals


def _text(value, dest: str) -> str:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise InputError(f"{dest} takes a number or a string, not {json.dumps(value)}")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return str(value)
