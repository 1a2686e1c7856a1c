#pragma once

/// Milter wire constants (Sendmail's mfdef.h / mfapi.h values), shared by both sides of
/// the protocol. See /work/shared/spec/milter-and-peers.md Part 1.

#include <cstdint>

namespace ringscan::milter {

/// Largest data part of one packet unless SMFIP_MDS_256K / SMFIP_MDS_1M was negotiated.
inline constexpr std::uint32_t max_data_size = 65535;
/// Largest BODY chunk an MTA sends (MILTER_CHUNK_SIZE).
inline constexpr std::uint32_t body_chunk_size = 65535;
/// Protocol version both Sendmail 8.17 and Postfix 3.7 offer.
inline constexpr std::uint32_t protocol_version = 6;

/// Commands, MTA -> milter (SMFIC_*).
namespace cmd {
inline constexpr char optneg = 'O';
inline constexpr char macro = 'D';
inline constexpr char connect = 'C';
inline constexpr char helo = 'H';
inline constexpr char mail = 'M';
inline constexpr char rcpt = 'R';
inline constexpr char data = 'T';
inline constexpr char header = 'L';
inline constexpr char eoh = 'N';
inline constexpr char body = 'B';
inline constexpr char eob = 'E';
inline constexpr char abort = 'A';
inline constexpr char quit = 'Q';
inline constexpr char quit_nc = 'K';
inline constexpr char unknown = 'U';
}  // namespace cmd

/// Replies, milter -> MTA (SMFIR_*).
namespace rep {
inline constexpr char continue_ = 'c';
inline constexpr char accept = 'a';
inline constexpr char reject = 'r';
inline constexpr char tempfail = 't';
inline constexpr char discard = 'd';
inline constexpr char replycode = 'y';
inline constexpr char skip = 's';
inline constexpr char progress = 'p';
inline constexpr char shutdown = '4';
inline constexpr char conn_fail = 'f';
inline constexpr char addheader = 'h';
inline constexpr char insheader = 'i';
inline constexpr char chgheader = 'm';
inline constexpr char replbody = 'b';
inline constexpr char addrcpt = '+';
inline constexpr char addrcpt_par = '2';
inline constexpr char delrcpt = '-';
inline constexpr char chgfrom = 'e';
inline constexpr char quarantine = 'q';
inline constexpr char optneg = 'O';
}  // namespace rep

/// CONNECT address families (SMFIA_*).
namespace family {
inline constexpr char unknown = 'U';
inline constexpr char unix_ = 'L';
inline constexpr char inet = '4';
inline constexpr char inet6 = '6';
}  // namespace family

/// Action bits (SMFIF_*): what the milter may do at end of message.
namespace smfif {
inline constexpr std::uint32_t addhdrs = 0x01;
inline constexpr std::uint32_t chgbody = 0x02;
inline constexpr std::uint32_t addrcpt = 0x04;
inline constexpr std::uint32_t delrcpt = 0x08;
inline constexpr std::uint32_t chghdrs = 0x10;
inline constexpr std::uint32_t quarantine = 0x20;
inline constexpr std::uint32_t chgfrom = 0x40;
inline constexpr std::uint32_t addrcpt_par = 0x80;
inline constexpr std::uint32_t setsymlist = 0x100;
inline constexpr std::uint32_t all = 0x1ff;  ///< SMFI_CURR_ACTS
}  // namespace smfif

/// Protocol bits (SMFIP_*): steps not to send, extra abilities, steps not to answer.
namespace smfip {
inline constexpr std::uint32_t noconnect = 0x1;
inline constexpr std::uint32_t nohelo = 0x2;
inline constexpr std::uint32_t nomail = 0x4;
inline constexpr std::uint32_t norcpt = 0x8;
inline constexpr std::uint32_t nobody = 0x10;
inline constexpr std::uint32_t nohdrs = 0x20;
inline constexpr std::uint32_t noeoh = 0x40;
inline constexpr std::uint32_t nr_hdr = 0x80;
inline constexpr std::uint32_t nounknown = 0x100;
inline constexpr std::uint32_t nodata = 0x200;
inline constexpr std::uint32_t skip = 0x400;
inline constexpr std::uint32_t rcpt_rej = 0x800;
inline constexpr std::uint32_t nr_conn = 0x1000;
inline constexpr std::uint32_t nr_helo = 0x2000;
inline constexpr std::uint32_t nr_mail = 0x4000;
inline constexpr std::uint32_t nr_rcpt = 0x8000;
inline constexpr std::uint32_t nr_data = 0x10000;
inline constexpr std::uint32_t nr_unkn = 0x20000;
inline constexpr std::uint32_t nr_eoh = 0x40000;
inline constexpr std::uint32_t nr_body = 0x80000;
inline constexpr std::uint32_t hdr_leadspc = 0x100000;
inline constexpr std::uint32_t mds_256k = 0x10000000;
inline constexpr std::uint32_t mds_1m = 0x20000000;
inline constexpr std::uint32_t all = 0x1fffff;  ///< SMFI_CURR_PROT, what Postfix/Sendmail offer

/// The SMFIP_NR_* bit that lets the milter leave `command` unanswered, or 0 for commands
/// without one (EOB always gets a final action; MACRO, ABORT, QUIT, QUIT_NC never get a reply).
[[nodiscard]] constexpr std::uint32_t no_reply_flag(char command) noexcept {
    switch (command) {
        case cmd::connect: return nr_conn;
        case cmd::helo: return nr_helo;
        case cmd::mail: return nr_mail;
        case cmd::rcpt: return nr_rcpt;
        case cmd::data: return nr_data;
        case cmd::header: return nr_hdr;
        case cmd::eoh: return nr_eoh;
        case cmd::body: return nr_body;
        case cmd::unknown: return nr_unkn;
        default: return 0;
    }
}
}  // namespace smfip

}  // namespace ringscan::milter
