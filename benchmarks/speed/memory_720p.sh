#!/usr/bin/env bash
# Peak memory and wall time of msvq on a 1-minute 1280x720 30 fps input (ffmpeg's testsrc2 pattern, H.264),
# encode and decode (decode upscaled back to 720p), with the shipped weights on the CPU.
# Usage: bash benchmarks/speed/memory_720p.sh [WORKDIR]
set -euo pipefail
work=${1:-$(mktemp -d)}
mkdir -p "$work"
ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 60 -c:v libx264 -pix_fmt yuv420p "$work/720p.mp4"
rm -f "$work/720p.msvq" "$work/720p-rec.mp4"
/usr/bin/time -f "encode: %e s wall, peak RSS %M KiB" msvq -q encode "$work/720p.mp4" "$work/720p.msvq"
/usr/bin/time -f "decode: %e s wall, peak RSS %M KiB" msvq -q decode "$work/720p.msvq" "$work/720p-rec.mp4" --size source
msvq info "$work/720p.msvq" --json | python -c "import json,sys; h=json.load(sys.stdin); print('frames', h['frame_count'], 'clips', h['n_clips'])"
