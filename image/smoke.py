"""The image's smoke test (make image): its Airbyte labels match metadata.yaml; spec, check, discover and a read of every stream (the optional ones configured) run inside the image
against the simulator, and the read must equal the same read by the connector installed in .venv.

Usage: python image/smoke.py --size SIZE --labels JSON -- COMMAND PREFIX ... ("{data}" in it is the folder with the config and
catalog, mounted at /data; the prefix runs `source-mixpanel` in the image)."""

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.simulator import GROUP_KEYS, INSIGHTS_REPORTS, PROJECT_ID, SA_SECRET, SA_USERNAME, MixpanelSimulator  # noqa: E402

STREAMS = ["export", "engage", "cohorts", "cohort_members", "funnels", "revenue", "annotations", "insights", "groups"]


def messages(command, what):
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        sys.exit(f"FAILED: {what} exited with {done.returncode}: {done.stderr[-2000:] or done.stdout[-2000:]}")
    return found


def of_type(found, kind):
    return [m for m in found if m["type"] == kind]


def records(found):
    by_stream = {}
    for m in of_type(found, "RECORD"):
        by_stream.setdefault(m["record"]["stream"], []).append(json.dumps(m["record"]["data"], sort_keys=True))
    return {stream: sorted(rows) for stream, rows in by_stream.items()}


def main():
    if "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="size unknown", help="the image's size as the engine prints it")
    parser.add_argument("--labels", required=True, help="the image's labels, as JSON")
    args = parser.parse_args(sys.argv[1:split])
    args.prefix = sys.argv[split + 1:]
    metadata = yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]
    labels = json.loads(args.labels)
    assert labels.get("io.airbyte.name") == metadata["dockerRepository"], labels
    assert labels.get("io.airbyte.version") == metadata["dockerImageTag"], labels
    with MixpanelSimulator() as sim, tempfile.TemporaryDirectory() as data:
        config = {
            "credentials": {"option_title": "Service Account", "username": SA_USERNAME, "secret": SA_SECRET,
                            "project_id": PROJECT_ID},
            "base_url": sim.url, "export_base_url": sim.url, "project_timezone": "UTC",
            "start_date": "2025-04-01", "end_date": "2025-04-03",
            "insights_reports": sorted(INSIGHTS_REPORTS), "group_keys": sorted(GROUP_KEYS),
        }
        Path(data, "config.json").write_text(json.dumps(config))
        image = [part.replace("{data}", data) for part in args.prefix]
        files = ["--config", "/data/config.json"]
        read = ["read", *files, "--catalog", "/data/catalog.json"]

        (spec,) = of_type(messages(image + ["spec"], "spec"), "SPEC")
        assert "credentials" in spec["spec"]["connectionSpecification"]["properties"], spec
        (status,) = of_type(messages(image + ["check", *files], "check"), "CONNECTION_STATUS")
        assert status["connectionStatus"]["status"] == "SUCCEEDED", status
        (catalog,) = of_type(messages(image + ["discover", *files], "discover"), "CATALOG")
        assert sorted(s["name"] for s in catalog["catalog"]["streams"]) == sorted(STREAMS), catalog
        sample = (ROOT / "sample_files" / "configured_catalog_with_insights_and_groups.json").read_text()
        Path(data, "catalog.json").write_text(sample)
        in_image = messages(image + read, "read in the image")
        local = messages([str(ROOT / ".venv" / "bin" / "source-mixpanel"), *[
            part.replace("/data", data) for part in read]], "read by .venv/bin/source-mixpanel")

        done = Counter(m["trace"]["stream_status"]["stream_descriptor"]["name"] for m in of_type(in_image, "TRACE")
                       if m["trace"]["type"] == "STREAM_STATUS" and m["trace"]["stream_status"]["status"] == "COMPLETE")
        assert sorted(done) == sorted(STREAMS), f"streams complete in the image: {sorted(done)}"
        image_records, local_records = records(in_image), records(local)
        assert sorted(image_records) == sorted(STREAMS), sorted(image_records)
        assert image_records == local_records, "the image's records differ from the local connector's"
    counts = ", ".join(f"{stream} {len(rows):,}" for stream, rows in sorted(image_records.items()))
    print(f"Image smoke test passed ({args.size.strip()}, {metadata['dockerRepository']} {metadata['dockerImageTag']}): spec, check, discover, and a read equal to the local one ({counts}).")


if __name__ == "__main__":
    main()
