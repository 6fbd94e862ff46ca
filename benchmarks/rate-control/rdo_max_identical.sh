#!/bin/sh
# --quality max (the default) writes exactly the bytes msvq wrote before rate control existed: the seven dev
# videos encoded by the code of commit 2ef9638 (the last before rate control) and by this checkout at
# --quality max, with the same weights; prints both sets of SHA-256 sums and whether they match.
#   sh benchmarks/rate-control/rdo_max_identical.sh > OUT.txt
set -e
W=$(pwd)/weights/msvq-default.safetensors
T=$(mktemp -d)
mkdir -p "$T/src" "$T/old" "$T/new"
git archive 2ef9638 msvq_codec | tar -x -C "$T/src"
for v in ../shared/data/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi ../shared/data/ucf101/videos/v_Archery_g01_c01.avi \
         ../shared/data/ucf101/videos/v_BaseballPitch_g01_c01.avi ../shared/data/ucf101/videos/v_Basketball_g01_c01.avi \
         ../shared/data/ucf101/videos/v_Basketball_g02_c03.avi ../shared/data/ucf101/videos/v_HeadMassage_g02_c05.avi \
         ../shared/data/ucf101/videos/v_PushUps_g02_c03.avi; do
    n=$(basename "$v" .avi)
    (cd "$T" && PYTHONPATH="$T/src" python -m msvq_codec -q encode "$OLDPWD/$v" "old/$n.msvq" --weights "$W")
    msvq -q encode "$v" "$T/new/$n.msvq" --weights "$W" --quality max
done
(cd "$T/old" && sha256sum ./*.msvq) > "$T/old.sha"
(cd "$T/new" && sha256sum ./*.msvq) > "$T/new.sha"
echo "old (commit 2ef9638):"; cat "$T/old.sha"
echo "new (--quality max):"; cat "$T/new.sha"
if cmp -s "$T/old.sha" "$T/new.sha"; then echo "identical: yes"; else echo "identical: NO"; fi
rm -rf "$T"
