// Built only by the SnapshotCodecRejectsUncarriedField test, never linked, and expected NOT
// to compile: it hands the engine snapshot codec's field check (engine_snapshot.cc,
// snapshot_codec::expect_fields) a structure with one member more than its visit function
// knows of -- what a member added to an engine structure without touching the codec looks
// like. Every real structure is checked the same way when ringscan_matcher builds; this
// proves the check still refuses such a structure (were it ever reduced to a no-op, a new
// member would silently be left out of snapshots and read back as its default).

#include "matcher/engine/engine_snapshot.cc"  // the codec is private to that file

namespace ringscan::matcher::detail {

/// The new member sits in padding, as one more flag after hash_table's last bool would:
/// sizeof alone would not see it.
struct grown_structure {
    std::uint64_t carried = 0;
    bool also_carried = false;
    bool added_later = false;
};

template <class Codec>
void visit_grown_structure(Codec& c, const grown_structure& s) {
    snapshot_codec::expect_fields<2>(s);
    c.value(s.carried);
    c.value(s.also_carried);
}

template void visit_grown_structure(snapshot_writer&, const grown_structure&);

}  // namespace ringscan::matcher::detail
