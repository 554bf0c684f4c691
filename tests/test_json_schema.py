"""Every command's JSON has one shape, written down as a JSON Schema in docs/schema/<name>.schema.json.

EXAMPLES lists, for every schema, the invocations whose output must match it.  A new command,
or a new mode of one (skbsim tcp, skbsim grid, validate --tcp ...): write its schema in
docs/schema/ and add its invocations here; the first test fails until both exist.  Invocations
wrapped in ``live(...)`` need root, /dev/net/tun and tracefs and skip without them.

The checker is the ``jsonschema`` package (a test dependency): JSON Schema 2020-12 in full
($ref, if/then/else, additionalProperties), kept by the schema's own authors, where a home-made
checker would test only what it happens to implement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from skbsim.cli import main
from skbsim.live.probe import requirements_missing

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schema"


class live(tuple):
    """An invocation that drives the running kernel."""


#: schema name (docs/schema/<name>.schema.json) -> invocations whose stdout must match it.  "trace" is the
#: per-packet record of run --trace, checked line by line (see test_trace_records_match_their_schema).
EXAMPLES: dict[str, list] = {
    "run": [
        ["run", "--quiet", "--json", "--count", "300"],
        ["run", "--quiet", "--json", "--count", "300", "--kernel", "6.1", "--kernel", "6.18", "--opt", "rx=build_skb",
         "--opt", "rx=legacy", "--engine", "reference"],
        ["run", "--quiet", "--json", "--count", "300", "--driver", "tun", "--driver", "copybreak", "--cpus", "2",
         "--fault", "slab:probability=0.1", "--app-rate", "0"],
        ["run", "--quiet", "--json", "--count", "300", "--traffic", "tcp-bulk", "--opt", "rx=build_skb"],
        ["run", "--quiet", "--json", "--count", "300", "--driver", "mlx5", "--driver", "ice", "--kernel", "6.18"],
        ["run", "--quiet", "--json", "--count", "300", "--socket", "tcp", "--flows", "2", "--kernel", "6.12",
         "--driver", "ntb", "--app-rate", "1000"],
    ],
    "alloc": [
        ["alloc", "--json", "--len", "256"],
        ["alloc", "--json", "--kernel", "6.18"],
        ["alloc", "--json", "--len", "4294967295", "--function", "__alloc_skb"],
    ],
    "rx": [
        ["rx", "--json", "--driver", "ice", "--frame-len", "1514"],
        ["rx", "--json", "--driver", "ice", "--opt", "rx=build_skb", "--frame-len", "9014"],
        ["rx", "--json", "--driver", "tun", "--opt", "napi=1", "--opt", "frags=1", "--frame-len", "3000"],
        ["rx", "--json", "--driver", "bnxt", "--opt", "mtu=9000", "--frame-len", "9014", "--kernel", "6.18"],
        ["rx", "--json", "--driver", "gve", "--frame-len", "100"],
    ],
    "sweep": [
        ["sweep", "--json", "--len", "0:3000"],
        ["sweep", "--json", "--len", "1500", "--kernel", "6.9", "--by-path"],
        ["sweep", "--json", "--len", "0:70000:1000", "--function", "__alloc_skb", "--kernel", "6.12"],
        ["sweep", "--json", "--len", "14:9014:500", "--driver", "mana", "--opt", "mtu=9000"],
        ["sweep", "--json", "--len", "0:4096:256", "--function", "page_pool_dev_alloc", "--kernel", "6.9"],
    ],
    "profile-show": [
        ["profile", "show", "6.9", "--json"],
        ["profile", "show", "6.18", "--json"],
    ],
    "validate": [
        live(["validate", "--json", "--sample", "20", "--routes", "block,frags_iov"]),
    ],
    "validate-virtio": [
        ["validate", "--driver", "virtio_net", "--json", "--trace-file",
         str(Path(__file__).resolve().parent / "fixtures" / "virtio_net_eth0_pip_7_wheels.trace.gz")],
        ["validate", "--driver", "virtio_net", "--json", "--kernel", "7.1", "--trace-file",
         str(Path(__file__).resolve().parent / "fixtures" / "virtio_net_eth0_pip_7_wheels.trace.gz")],
    ],
    "validate-tcp": [
        live(["validate", "--tcp", "--json", "full-size", "send:100x3 read:50"]),
        live(["validate", "--tcp", "--live-only", "--json", "--so-rcvbuf", "8192", "--syn", "ts=1", "send:1000x9 read"]),
    ],
    "tcp": [
        ["tcp", "--json", "send:1000x3", "read"],
        ["tcp", "--json", "--kernel", "6.1", "--kernel", "6.12", "--driver", "ntb", "--opt", "copybreak=0",
         "--opt", "copybreak=3646", "--so-rcvbuf", "8192", "--syn", "mss=1460,wscale=7,ts=1,sack=1",
         "hold", "send:1000x4", "release", "readeach", "send:100x5", "wait:10", "read:100"],
    ],
    "trace": [
        ["run", "--quiet", "--count", "300", "--rcvbuf", "5000", "--app-rate", "0", "--trace"],
    ],
}

MISSING = requirements_missing()


def _schema(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_driver_enums_name_every_registered_driver():
    from skbsim.drivers import DRIVERS

    for name in ("run", "rx", "sweep"):
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        properties = schema["$defs"]["run"]["properties"] if name == "run" else schema["properties"]
        assert set(properties["driver"]["enum"]) == set(DRIVERS), name


def test_every_schema_has_examples_and_every_example_a_schema():
    assert {path.name.removesuffix(".schema.json") for path in SCHEMAS.glob("*.schema.json")} == set(EXAMPLES)
    assert all(EXAMPLES.values())


@pytest.mark.parametrize("name, argv", [(name, argv) for name, invocations in EXAMPLES.items() if name != "trace"
                                        for argv in invocations])
def test_command_output_matches_its_schema(capsys, name, argv):
    if isinstance(argv, live) and MISSING:
        pytest.skip("needs " + "; ".join(MISSING))
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code in (0, 1), out
    errors = sorted(_schema(name).iter_errors(json.loads(out)), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_trace_records_match_their_schema(tmp_path):
    validator = _schema("trace")
    for argv in EXAMPLES["trace"]:
        for suffix in (".jsonl", ".csv"):
            path = tmp_path / f"t{suffix}"
            assert main([*argv, str(path)]) == 0
            if suffix == ".jsonl":
                records = [json.loads(line) for line in path.read_text().splitlines()]
                assert len(records) == 300
                outcomes = set()
                for record in records:
                    validator.validate(record)
                    outcomes.add(record["outcome"])
                assert {"delivered", "dropped:socket_rcvbuf"} <= outcomes
            else:
                header = path.read_text().splitlines()[0].split(",")
                assert header == list(validator.schema["required"])


def test_shapes_do_not_depend_on_the_number_of_results(capsys):
    """run and alloc print the same kind of object for one result as for several."""
    assert main(["run", "--quiet", "--json", "--count", "50"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["run", "--quiet", "--json", "--count", "50", "--kernel", "6.9", "--kernel", "6.18"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert set(one) == set(two) == {"runs"} and (len(one["runs"]), len(two["runs"])) == (1, 2)
    assert main(["alloc", "--json", "--len", "1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["allocations"]) == 1
