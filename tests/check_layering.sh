#!/usr/bin/env bash
# Fails when a library includes a sibling it may not depend on (ARCHITECTURE.md):
# ring, matcher and proto depend on no other in-tree library; milter only on proto; daemon
# on ring, proto, matcher and milter (public headers); tools/ on public headers only.
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
check_private() {  # check_private <dir>: no private header of another library (a path with /internal/)
    local dir=$1
    [ -d "$root/$dir" ] || return 0
    if hits=$(grep -rnE --include='*.h' --include='*.cc' '#include "[^"]*/internal/' "$root/$dir"); then
        echo "layering: $dir/ must not include another library's internal/ headers:"; echo "$hits"; status=1
    fi
}
check ring    matcher proto milter tools
check matcher ring proto milter tools
check proto   ring matcher milter tools
check milter  ring matcher tools
# daemon/ (ringscan::daemon) builds on ring, proto, matcher and milter (the in-process milter
# frontend); nothing below it knows it.
check daemon  tools
check_private daemon
check ring    daemon
check proto   daemon
check matcher daemon
check milter  daemon
# tools/ and bench/ use the libraries' public headers only.
check_private tools
check_private bench

# Inside matcher/ (matcher/README.md): model at the bottom, formats and unpack on it, engine on
# all three, content_scan.cc on top. `check_matcher <dir> <allowed include prefixes...>`: every
# `#include "matcher/...` in <dir> must start with one of the prefixes.
check_matcher() {
    local dir=$1; shift
    [ -d "$root/$dir" ] || return 0
    local pattern
    pattern=$(printf '%s\\|' "$@"); pattern=${pattern%\\|}
    if hits=$(grep -rn --include='*.h' --include='*.cc' '#include "matcher/' "$root/$dir" |
              grep -v "#include \"\\($pattern\\)"); then
        echo "layering: $dir/ may include only $* of matcher/:"; echo "$hits"; status=1
    fi
}
check_matcher matcher/model   matcher/model/
check_matcher matcher/unpack  matcher/model/ matcher/unpack/
check_matcher matcher/formats matcher/model/ matcher/formats/ matcher/signatures.h
check_matcher matcher/engine  matcher/model/ matcher/formats/ matcher/unpack/ matcher/engine/ \
                              matcher/signatures.h matcher/engine.h
# Outside matcher/ only its public headers (matcher/*.h); tests/matcher may look inside.
for dir in ring proto milter daemon tools bench; do
    check_matcher "$dir" matcher/signatures.h matcher/engine.h matcher/content_scan.h \
                  matcher/introspect.h
done

[ $status -eq 0 ] && echo "layering: ok"
exit $status
