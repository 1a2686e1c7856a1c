#pragma once

/// A shard's provided-buffer ring: `count` receive buffers of `size` bytes, registered with
/// the shard's io_uring as one buffer group from which multishot recv picks. The kernel owns
/// a buffer from the moment it is in the ring until its completion names it; then the shard
/// lends it to a handler and recycle() gives it back.
///
/// Owned by its shard and touched only on the shard's thread. unregister() runs while the
/// io_uring is still up; the memory is unmapped when the object dies, after the ring.

#include <cstddef>
#include <cstdint>

struct io_uring;
struct io_uring_buf_ring;

namespace ringscan::ring::internal {

class buffer_ring {
public:
    /// The one buffer group every shard uses (each shard has its own io_uring).
    static constexpr std::uint16_t group_id = 0;

    buffer_ring() = default;
    ~buffer_ring();
    buffer_ring(const buffer_ring&) = delete;
    buffer_ring& operator=(const buffer_ring&) = delete;

    /// Maps the buffers and registers them with `ring`; throws setup_error naming the cause.
    /// `count` must be a power of two.
    void setup(io_uring& ring, unsigned count, unsigned size);
    /// Takes the group back from the kernel (before the io_uring is torn down).
    void unregister(io_uring& ring) noexcept;

    [[nodiscard]] std::byte* address(unsigned bid) const {
        return buffers_ + std::size_t{bid} * size_;
    }
    /// Hands buffer `bid` back to the kernel.
    void recycle(unsigned bid) noexcept;

private:
    io_uring_buf_ring* ring_ = nullptr;
    std::size_t ring_bytes_ = 0;
    std::byte* buffers_ = nullptr;
    std::size_t buffer_bytes_ = 0;
    unsigned count_ = 0;
    unsigned size_ = 0;
};

}  // namespace ringscan::ring::internal
