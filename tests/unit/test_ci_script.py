""".ci/run on a developer's machine: it kills nothing, keeps Debian from starting what it installs,
and disables only the units its own install enabled. Run for real against stub apt-get,
systemctl and make (the real script, a PATH of stubs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "run"
#: the real tools the script uses; nothing else is on its PATH (so prometheus is "missing")
TOOLS = ("bash", "ls", "awk", "sort", "comm", "sed", "chmod", "rm", "cat", "dirname", "env")

APT_GET = """#!/bin/bash
# stub: what invoke-rc.d would decide, and a package that enables its unit
[[ $1 == update ]] && exit 0
if [[ -x $ADAPTD_CI_POLICY_RC ]]; then "$ADAPTD_CI_POLICY_RC" prometheus start; rc=$?; else rc=0; fi
echo "apt-get $* policy=$rc" >>"$STATE/log"
[[ $rc == 101 ]] || echo "started prometheus" >>"$STATE/log"
echo prometheus.service >>"$STATE/enabled"
"""
SYSTEMCTL = """#!/bin/bash
case $1 in
  list-unit-files) while read -r u; do echo "$u enabled enabled"; done <"$STATE/enabled" ;;
  disable) echo "systemctl $*" >>"$STATE/log" ;;
esac
"""
MAKE = """#!/bin/bash
echo "make $*" >>"$STATE/log"
"""


def _sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH of real basic tools plus the stubs, and the stubs' state directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    for name, body in (("apt-get", APT_GET), ("systemctl", SYSTEMCTL), ("make", MAKE)):
        stub = bin_dir / name
        stub.write_text(body)
        stub.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    return bin_dir, state


def test_the_script_kills_nothing() -> None:
    body = SCRIPT.read_text()
    for word in ("pkill", "killall", "kill "):
        assert word not in body


def test_install_starts_nothing_and_leaves_only_prior_units_enabled(tmp_path: Path) -> None:
    bin_dir, state = _sandbox(tmp_path)
    (state / "enabled").write_text("ssh.service\n")
    policy = tmp_path / "policy-rc.d"
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env={"PATH": str(bin_dir), "STATE": str(state), "ADAPTD_CI_POLICY_RC": str(policy)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = (state / "log").read_text().splitlines()
    install = [line for line in log if line.startswith("apt-get install")]
    assert len(install) == 1 and "prometheus" in install[0]
    assert install[0].endswith("policy=101"), "services must not start during the install"
    assert "started prometheus" not in log
    assert "systemctl disable --now prometheus.service" in log
    assert not any("ssh.service" in line for line in log), "a unit enabled before is left alone"
    assert log[-2:] == ["make check", "make test"]
    assert not policy.exists(), "the temporary policy-rc.d is removed"


def test_an_existing_policy_rc_is_left_in_place(tmp_path: Path) -> None:
    bin_dir, state = _sandbox(tmp_path)
    (state / "enabled").write_text("")
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir), "STATE": str(state)}
    env["ADAPTD_CI_POLICY_RC"] = str(policy)
    result = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
