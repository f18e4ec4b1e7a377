"""gateway.cli: flags -> overrides, --check-config, exit status 2 on bad input, the run hand-off."""

import importlib
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("TFS_GATEWAY__"):
            monkeypatch.delenv(name)


def check_config(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--check-config"]) == 0
    dumped: dict[str, Any] = yaml.safe_load(capsys.readouterr().out)
    return dumped


def test_check_config_without_a_file_prints_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config(capsys) == Settings().to_mapping()


def test_flags_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("server: {port: 1000, host: filehost}\nbackends: {default: {}, gpu: {}}\n")
    dumped = check_config(
        capsys,
        *("--config", str(config), "--port", "9000", "--workers", "2", "--log-level", "debug"),
        *("--backend", "a:8500", "--backend", "b:8500"),
        *("--deployment", "one=half_plus_two", "--deployment", "two=bert@gpu"),
    )
    server = dumped["server"]
    assert (server["host"], server["port"], server["workers"], server["log_level"]) == (
        "filehost",
        9000,
        2,
        "debug",
    )
    assert dumped["backends"]["default"]["targets"] == ["a:8500", "b:8500"]
    assert dumped["deployments"]["one"]["model"] == "half_plus_two"
    assert (dumped["deployments"]["two"]["model"], dumped["deployments"]["two"]["backend"]) == ("bert", "gpu")


def test_env_is_applied_below_the_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TFS_GATEWAY__SERVER__PORT", "7000")
    monkeypatch.setenv("TFS_GATEWAY__SERVER__HOST", "127.0.0.1")
    dumped = check_config(capsys, "--port", "9000")
    assert (dumped["server"]["host"], dumped["server"]["port"]) == ("127.0.0.1", 9000)


def test_check_config_redacts_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file-42\n")
    monkeypatch.setenv("ALICE_PASSWORD", "hunter2-alice")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "auth:\n  type: any\n  basic_users: {alice: {password_env: ALICE_PASSWORD}}\n"
        f"  api_keys: [{{file: {key_file}}}]\n"
    )
    assert main(["--config", str(config), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2-alice" not in out and "sk-from-file-42" not in out
    assert yaml.safe_load(out)["auth"]["basic_users"] == {"alice": {"password_env": "ALICE_PASSWORD"}}


def test_config_error_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  prot: 9000\n")
    assert main(["--config", str(config), "--check-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tfs-gateway: config error at server.prot: unknown key")


def test_flag_values_are_validated_by_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "70000", "--check-config"]) == 2
    assert "config error at server.port:" in capsys.readouterr().err
    assert main(["--backend", "nohost", "--check-config"]) == 2
    assert "config error at backends.default.targets[0]:" in capsys.readouterr().err
    assert main(["--deployment", "d=m@nope", "--check-config"]) == 2
    assert "config error at deployments.d.backend:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--port", "eighty"],
        ["--workers"],
        ["--log-level", "verbose"],
        ["--deployment", "no-equals"],
        ["--deployment", "=model"],
        ["--deployment", "id="],
        ["--deployment", "id=model@"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: tfs-gateway" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--check-config" in capsys.readouterr().out


def test_runs_the_app_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def run(settings: Settings, reload: Callable[[], Settings]) -> int:
        seen.append(settings)
        assert reload().server.port == 9001  # a SIGHUP reload keeps the command line's flags
        return 0

    fake_app = types.ModuleType("gateway.process")
    fake_app.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.process", fake_app)
    assert main(["--port", "9001"]) == 0
    assert [s.server.port for s in seen] == [9001]


def test_importing_main_module_parses_no_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["tfs-gateway", "--bogus"])
    importlib.import_module("gateway.__main__")


def run_module(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFS_GATEWAY__")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "gateway", *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_python_m_gateway_exits_2_on_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("backends:\n  default:\n    targets: ['a:1', 'nope']\n")
    result = run_module("--config", "bad.yaml", "--check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("tfs-gateway: config error at backends.default.targets[1]:")


@pytest.mark.slow
def test_python_m_gateway_checks_the_shipped_config(tmp_path: Path) -> None:
    result = run_module("--config", str(REPO / "config.yaml"), "--check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout) == Settings().to_mapping()
