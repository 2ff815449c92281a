#!/bin/bash
# The throughput done-when pairs, interleaved: per repetition a fresh-memory copy with 4 KiB pages,
# one with huge pages, then each variant; medians at the end (docs/BENCHMARKS.md, "Third session").
#   bash bench/throughput-pairs.sh REPS "label|ENV=V ...|simulate args" ...
#   bash bench/throughput-pairs.sh 5 "raw||--codecs raw" "raw4k|PAGEWIRE_HUGEPAGES=off|--codecs raw"
cd "$(dirname "$0")/.." || exit 2
reps=${1:-5}; shift
declare -A res
ms() { python3 -c 'import json,sys; print(round(json.loads(sys.stdin.readline())["ms"]))'; }
for r in $(seq "$reps"); do
  res[fresh4k]+="$(GLIBC_TUNABLES= node bench/fresh-copy.mjs 536870912 | ms) "
  res[freshhuge]+="$(GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node bench/fresh-copy.mjs 536870912 | ms) "
  for v in "$@"; do
    IFS='|' read -r label envs args <<<"$v"
    # shellcheck disable=SC2086
    t=$(env $envs node bin/pagewire.js simulate --size 512MiB --workload idle --link 0 --transport tcp --json $args |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["totalTimeMs"]) if d["verified"] and d["identical"] else "FAIL")')
    res[$label]+="$t "
  done
done
for k in "${!res[@]}"; do
  echo "$k: ${res[$k]} median $(echo "${res[$k]}" | tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"
done
uptime
