"""``skbsim profile``: list the kernels, show one with every formula, write the host's."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="list kernel profiles, show one, or write the running kernel's as TOML")
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))

    listing = actions.add_parser("list", help="the built-in kernels, and what 'host' would be")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="every input, derived constant (with its formula) and feature")
    show.add_argument("name", help="a built-in kernel (6.1, 6.9, 6.12, 6.18, 7.1), 'host', or a profile .toml")
    show.add_argument("--kernel-config", help="take the config-dependent inputs from this .config")
    show.add_argument("--json", action="store_true",
                      help="print one JSON object (docs/schema/profile-show.schema.json)")
    show.set_defaults(run=run_show)

    from_host = actions.add_parser(
        "from-host", help="print the running kernel's profile as TOML (skbsim profile from-host > host.toml)"
    )
    from_host.add_argument("--kernel-config", help="use this .config instead of the running kernel's")
    from_host.set_defaults(run=run_from_host)


def run_list(args) -> int:
    import os

    from rich.table import Table

    from skbsim.commands.common import console as new_console
    from skbsim.errors import InputError
    from skbsim.profile import builtin_names, load_profile

    table = Table(title="kernel profiles (--kernel NAME)", title_justify="left")
    for column in ("name", "release", "arch", "what sets it apart"):
        table.add_column(column)
    for name in builtin_names():
        profile = load_profile(name)
        table.add_row(name, profile.release, profile.arch, profile.description)
    try:
        from skbsim.live.host import rules_release_for

        host_line = f"the running kernel, with the rules of {rules_release_for(os.uname().release)}"
    except InputError as err:
        host_line = f"unavailable: {err}"
    table.add_row("host", os.uname().release, os.uname().machine, host_line)
    console = new_console(width=140)
    table.columns[1].no_wrap = True
    console.print(table)
    console.print("Also: --kernel path/to/profile.toml; --kernel-config path/to/.config with any of them.",
                  highlight=False)
    return 0


def profile_as_dict(profile) -> dict:
    from skbsim.profile import FEATURES

    return {
        "name": profile.name,
        "release": profile.release,
        "arch": profile.arch,
        "rules_from": profile.rules_from,
        "description": profile.description,
        "origin": profile.origin,
        "inputs": [
            {"name": key, "value": value, "source": profile.sources.get(key, profile.origin)}
            for key, value in profile.describe_inputs()
        ],
        "derived": [{"name": d.name, "value": d.value, "formula": d.formula} for d in profile.derivations],
        "features": [
            {"name": key, "value": profile.features[key], "meaning": FEATURES[key][2]} for key in FEATURES
        ],
    }


def run_show(args) -> int:
    from rich.table import Table

    from skbsim.commands.common import console as new_console, print_json
    from skbsim.profile import load_profile

    profile = load_profile(args.name, args.kernel_config)
    shown = profile_as_dict(profile)
    if args.json:
        print_json(shown)
        return 0
    console = new_console(width=150)
    console.print(f"Linux {profile.name}: release {profile.release}, {profile.arch}", highlight=False)
    console.print(f"rules from: {profile.rules_from}", highlight=False)
    if profile.description:
        console.print(f"in short: {profile.description}", highlight=False)
    console.print(f"loaded from: {profile.origin}", highlight=False)

    def table(title: str, rows: list[dict], third: tuple[str, str], features: bool = False) -> None:
        """name, value and a third column (key, heading) of each row, as one table; a feature's value is
        left-aligned and a boolean one in lower case."""
        shown_table = Table(title=title, title_justify="left")
        shown_table.add_column("name")
        shown_table.add_column("value", justify="left" if features else "right", no_wrap=True)
        shown_table.add_column(third[1])
        for row in rows:
            value = row["value"]
            value = str(value).lower() if features and isinstance(value, bool) else str(value)
            shown_table.add_row(row["name"], value, row[third[0]])
        console.print(shown_table)

    table("inputs", shown["inputs"], ("source", "from"))
    table("derived constants", shown["derived"], ("formula", "formula"))
    table("features (what this release does)", shown["features"], ("meaning", "meaning"), features=True)
    return 0


def run_from_host(args) -> int:
    from skbsim.profile import load_profile

    profile = load_profile("host", args.kernel_config)
    header = (
        f"skbsim profile of the running kernel {profile.release} ({profile.arch}),\n"
        "written by 'skbsim profile from-host'.  Use it with --kernel path/to/this.toml.\n"
        "[sources] says where each input came from."
    )
    print(profile.to_toml(header), end="")
    return 0
