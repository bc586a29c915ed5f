#!/usr/bin/env bash
# make image: builds source-mixpanel:dev and smoke-tests it (spec, check, discover, read of every stream against
# the simulator). With a Docker engine, `docker build`; without one, buildah on a Debian base made by debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=source-mixpanel:dev
PYTHON=${PYTHON:-.venv/bin/python}

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker build -t "$TAG" .
  size=$(docker images --format '{{.Size}}' "$TAG")
  labels=$(docker image inspect --format '{{json .Config.Labels}}' "$TAG")
  exec "$PYTHON" image/smoke.py --size "$size" --labels "$labels" -- docker run --rm --network host -v "{data}:/data" "$TAG"
fi

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "make image needs a Docker engine, or buildah and debootstrap (apt-get install -y buildah debootstrap)." >&2
  exit 1
fi
BUILDAH=(buildah --storage-driver vfs)
BASE=localhost/debian-python:bookworm
if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  # Base images cannot be pulled here: a minimal Debian with Python 3.11, made from Debian's packages.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "Building the base image $BASE with debootstrap (about a minute)..."
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$work/rootfs" >/dev/null
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\n' > "$work/Dockerfile"
  "${BUILDAH[@]}" bud --isolation chroot -t "$BASE" "$work"
fi
# pip inside the build needs the host's CA bundle; mounted so that the Dockerfile stays the one Docker builds.
"${BUILDAH[@]}" bud --isolation chroot --network host \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg BASE_IMAGE="$BASE" -t "$TAG" .
size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$TAG")
labels=$("${BUILDAH[@]}" inspect --type image "$TAG" | "$PYTHON" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]["Labels"]))')
ctr=$("${BUILDAH[@]}" from "$TAG")
trap '"${BUILDAH[@]}" rm "$ctr" >/dev/null' EXIT
"$PYTHON" image/smoke.py --size "$size" --labels "$labels" -- "${BUILDAH[@]}" run --isolation chroot -v "{data}:/data" "$ctr" -- source-mixpanel
