"""A non-editable wheel works from any directory: the manifest ships inside it."""

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_installed_wheel_runs_spec_from_any_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True,
    )
    (wheel,) = wheels.glob("source_mixpanel-*.whl")
    assert "source_mixpanel/manifest.yaml" in zipfile.ZipFile(wheel).namelist()

    # A fresh venv holding only the wheel; its dependencies come from this venv through a .pth line.
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(fresh), "platbase": str(fresh)}))
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True,
    )
    where = subprocess.run([str(fresh / "bin" / "python"), "-c", "import source_mixpanel; print(source_mixpanel.__file__)"],
                           check=True, capture_output=True, text=True, cwd="/").stdout
    assert where.startswith(str(site))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "manifest.yaml").write_text("version: 0.1.0\nstreams: []\n")
    for cwd in ("/tmp", elsewhere):
        done = subprocess.run([str(fresh / "bin" / "source-mixpanel"), "spec"], capture_output=True, text=True, cwd=cwd)
        assert done.returncode == 0, done.stderr
        (spec,) = [json.loads(line) for line in done.stdout.splitlines() if '"SPEC"' in line]
        assert "credentials" in spec["spec"]["connectionSpecification"]["properties"]
