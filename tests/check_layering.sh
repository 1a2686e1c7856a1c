#!/usr/bin/env bash
# Fails when a library includes a sibling it may not depend on (ARCHITECTURE.md):
# ring, matcher and proto depend on no other in-tree library; milter only on proto.
set -u
root=${1:-$(dirname "$0")/..}
status=0
check() {  # check <dir> <forbidden include prefixes...>
    local dir=$1; shift
    [ -d "$root/$dir" ] || return 0
    for prefix in "$@"; do
        if hits=$(grep -rn --include='*.h' --include='*.cc' "#include \"$prefix/" "$root/$dir"); then
            echo "layering: $dir/ must not include $prefix/:"; echo "$hits"; status=1
        fi
    done
}
check ring    matcher proto milter tools
check matcher ring proto milter tools
check proto   ring matcher milter tools
check milter  ring matcher tools
[ $status -eq 0 ] && echo "layering: ok"
exit $status
