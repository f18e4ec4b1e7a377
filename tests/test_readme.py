"""The README as a test: every documented ``curl`` example runs and prints what the docs show.

The examples are read from README.md and from the banner ``make demo`` prints
(:mod:`readme_examples` parses both; nothing here repeats them). Each one runs for real:
bash runs the documented line, with the ``curl`` binary, ``$B`` pointing at a gateway
started with the demo's own flags (examples/demo.sh) in front of the ModelServer stand-in
serving the example models: what ``make demo`` runs, on free loopback ports.

Where the docs show output under an example, the body must equal it: as JSON values when
it is JSON (layout and key order aside, but ``1`` is not ``1.0``), as exact text otherwise.
Every example must answer 2xx, since none is documented to fail. An example CI cannot run
must be listed in :data:`NOT_RUNNABLE` with the reason; nothing else is left out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from gateway_process import GatewayProcess
from readme_examples import Example, UnparsedExample, banner_examples, demo_gateway_args, readme_examples

from devserver.testing import running_devserver
from gateway.config import Settings

# command (exactly as documented) -> why CI cannot run it. Keep it small: an entry must be
# an example that really cannot run here (kubectl, docker), and it must still exist.
NOT_RUNNABLE: dict[str, str] = {}

EXAMPLES = readme_examples() + banner_examples()
RUNNABLE = [example for example in EXAMPLES if example.command not in NOT_RUNNABLE]
DOCUMENTED_ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):8501\b")

# Wraps the real binary: -q ignores a ~/.curlrc; the status goes on a last line of its own.
CURL_WRAPPER = 'curl() { command curl -q --silent --show-error --noproxy "*" --write-out "\\n%{http_code}" "$@"; }'
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _ready(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo_gateway(example_models_config: Path) -> AsyncIterator[GatewayProcess]:
    """One stand-in and one gateway, configured as ``make demo`` configures them, for every example."""
    with running_devserver(example_models_config) as standin:
        async with GatewayProcess({}, *demo_gateway_args(standin.address)) as gateway:
            # As demo.sh does: print nothing until every model the demo routes to is loaded.
            await gateway.wait_for(lambda: _ready(gateway.url), "/readyz to answer 200")
            yield gateway


def diagnosis(gateway: GatewayProcess) -> str:
    """What a failure message needs to tell a wrong example from a gateway that went away."""
    assert gateway.proc is not None
    state = "running" if gateway.proc.poll() is None else f"exited {gateway.proc.returncode}"
    return f"gateway {state}; its stderr ends:\n{gateway.stderr()[-2000:]}"


def run(example: Example, gateway: GatewayProcess) -> tuple[int, str]:
    """Run the documented command line with bash; (HTTP status, body)."""
    assert shutil.which("curl"), "the README test needs the curl binary (apt-get install -y curl; .ci/run does)"
    url = gateway.url
    command = DOCUMENTED_ADDRESS.sub(url.removeprefix("http://"), example.command)
    env = {key: value for key, value in os.environ.items() if key.lower() not in PROXY_VARIABLES}
    # An example may pipe from python3 (see README); make that this interpreter, not whatever is first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    script = "\n".join(["set -o pipefail", CURL_WRAPPER, f"B={url}", command])
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, f"{example.where}: exit {done.returncode}\n{done.stderr}\n{diagnosis(gateway)}"
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def canonical(value: Any) -> str:
    """JSON text that ignores layout and key order but keeps 1 and 1.0 apart."""
    return json.dumps(value, sort_keys=True)


def test_examples_found_in_both_documents() -> None:
    assert {example.where.split(":")[0] for example in EXAMPLES} == {"README.md", "examples/demo.sh"}


def test_not_runnable_lists_only_documented_examples() -> None:
    stale = set(NOT_RUNNABLE) - {example.command for example in EXAMPLES}
    assert not stale, f"NOT_RUNNABLE names commands the docs no longer have: {sorted(stale)}"


@pytest.mark.slow
@pytest.mark.parametrize("example", RUNNABLE, ids=[example.where for example in RUNNABLE])
def test_example_prints_what_the_docs_show(example: Example, demo_gateway: GatewayProcess) -> None:
    status, body = run(example, demo_gateway)
    assert 200 <= status < 300, f"{example.where}: {example.command}\n-> {status} {body}\n{diagnosis(demo_gateway)}"
    if example.shown is None:
        return
    try:
        shown = json.loads(example.shown)
    except ValueError:
        assert body.rstrip("\n") == example.shown, example.where
    else:
        assert canonical(json.loads(body)) == canonical(shown), f"{example.where}: {example.command}"


# --------------------------------------------------------------------------- the parser itself

MARKDOWN = """\
Prose may say curl without being an example.

```sh
B=http://localhost:8501   # comments may say curl too
curl $B/a                 # no output shown
curl -d '{"x": 1}' $B/b
# {"y": [
#   2]}
echo 1 | curl -d @- $B/c
# plain text
```
"""


def test_markdown_examples_and_their_shown_output(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(MARKDOWN)
    assert readme_examples(path) == [
        Example("README.md:5", "curl $B/a                 # no output shown", None),
        Example("README.md:6", """curl -d '{"x": 1}' $B/b""", '{"y": [\n  2]}'),
        Example("README.md:9", "echo 1 | curl -d @- $B/c", "plain text"),
    ]


@pytest.mark.parametrize("line", ["$ curl $B/a", "sudo curl $B/a", "x=$(curl $B/a)"])
def test_a_curl_line_that_cannot_run_as_written_fails_the_parse(tmp_path: Path, line: str) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"```sh\n{line}\n```\n")
    with pytest.raises(UnparsedExample, match=r"README\.md:2"):
        readme_examples(path)


def test_banner_examples_are_read_as_bash_prints_them(tmp_path: Path) -> None:
    path = tmp_path / "demo.sh"
    banner = 'Try on $PORT:\n  curl -d \'{"a": "\\$HOME"}\' $B/p\n'
    path.write_text(f'B=x\nPORT=1\ncat <<MSG\n{banner}MSG\ncurl -sf "$B/readyz"\n')
    expected = Example(f"{tmp_path.name}/demo.sh:5", """curl -d '{"a": "$HOME"}' $B/p""", None)
    assert banner_examples(path) == [expected]


def test_demo_gateway_args_swap_the_backend_and_drop_the_address() -> None:
    args = demo_gateway_args("127.0.0.1:9")
    assert args[args.index("--backend") + 1] == "127.0.0.1:9"
    assert "--host" not in args and "--port" not in args


def test_the_yaml_deployments_shown_are_the_ones_make_demo_runs() -> None:
    """Each ```yaml block of deployments in README.md is, key for key once defaults fill in, the
    deployment of the same id in examples/gateway.yaml (the config ``make demo`` serves)."""
    root = Path(__file__).resolve().parents[1]
    demo = Settings.from_mapping(yaml.safe_load((root / "examples" / "gateway.yaml").read_text()))
    blocks = re.findall(r"```yaml\n(deployments:\n.*?)```", (root / "README.md").read_text(), re.S)
    shown = {name: spec for block in blocks for name, spec in yaml.safe_load(block)["deployments"].items()}
    assert {"canary", "candidate"} <= set(shown)
    for name, spec in shown.items():
        assert Settings.from_mapping({"deployments": {name: spec}}).deployment(name) == demo.deployment(name), name
