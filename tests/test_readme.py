"""The README's two commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", quick)


def test_quick_start_has_exactly_two_commands():
    commands = _commands()
    assert len(commands) == 2
    assert "pip install" in commands[0] and "skbsim" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _commands()[1] in ci.splitlines()


def _run_ci_with_stubs(tmp_path, tools: dict[str, str]):
    """.ci/run in a copy of .ci/ with PATH holding only bash, coreutils it uses and the ``tools`` given
    (name -> shell body); every stub appends its name and arguments to calls.log."""
    import shutil
    import subprocess

    (tmp_path / "repo" / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", tmp_path / "repo" / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname", "env"):
        (bin_dir / name).symlink_to(shutil.which(name))
    log = tmp_path / "calls.log"
    for name, body in tools.items():
        if body is None:  # (left out: the machine lacks it)
            continue
        stub = bin_dir / name
        stub.write_text(f"#!{shutil.which('bash')}\necho \"{name} $*\" >> {log}\n{body}\n")
        stub.chmod(0o755)
    proc = subprocess.run([str(bin_dir / "bash"), str(tmp_path / "repo" / ".ci" / "run")], capture_output=True,
                          text=True, env={"PATH": str(bin_dir)}, timeout=60)
    return proc, (log.read_text().splitlines() if log.exists() else [])


#: stubs for a machine that has everything .ci/run installs (Debian's dpkg-query reports the config package)
EVERYTHING = {"chromium": "", "chromedriver": "", "bpftool": "", "dpkg-query": "echo -n 'install ok installed'"}


def test_ci_installs_what_the_tests_need_before_the_tests(tmp_path):
    """On a bare Debian machine .ci/run installs chromium and chromium-driver (the browser tests), bpftool (the
    live BTF tests) and linux-config-6.12 (Debian's 6.12 config), then runs the tests."""
    proc, calls = _run_ci_with_stubs(tmp_path, {"id": "echo 0", "apt-get": "", "python3": ""})
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "id -u",
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends chromium chromium-driver bpftool linux-config-6.12",
        "python3 -m pip install .[test]",
        "python3 -m pytest",
    ]


def test_ci_installs_only_what_is_missing(tmp_path):
    proc, calls = _run_ci_with_stubs(tmp_path, {**EVERYTHING, "bpftool": None, "id": "echo 0", "apt-get": "",
                                                "python3": ""})
    assert proc.returncode == 0, proc.stderr
    assert "apt-get install -y -qq --no-install-recommends bpftool" in calls


def test_ci_without_apt_get_says_those_tests_will_skip(tmp_path):
    proc, calls = _run_ci_with_stubs(tmp_path, {"id": "echo 1000", "python3": ""})
    assert proc.returncode == 0, proc.stderr
    assert "missing chromium chromium-driver bpftool linux-config-6.12 and no apt-get" in proc.stderr
    assert "the tests that need them will skip" in proc.stderr
    assert calls == ["id -u", "python3 -m pip install .[test]", "python3 -m pytest"]


def test_ci_with_everything_installs_nothing(tmp_path):
    proc, calls = _run_ci_with_stubs(tmp_path, {**EVERYTHING, "apt-get": "", "python3": ""})
    assert proc.returncode == 0, proc.stderr
    assert calls == ["dpkg-query -W -f=${Status} linux-config-6.12", "python3 -m pip install .[test]",
                     "python3 -m pytest"]


def test_ci_stops_when_the_browser_install_fails(tmp_path):
    proc, calls = _run_ci_with_stubs(tmp_path, {"id": "echo 0", "apt-get": "exit 100", "python3": ""})
    assert proc.returncode == 100
    assert calls == ["id -u", "apt-get update -qq"]
