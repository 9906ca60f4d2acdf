// Package wal is the store's write-ahead log: what makes a reading durable before it
// is acknowledged, at the cost of a block — a 512-byte sector where the file system
// offers direct I/O — per group of readings on the hub's flash.
//
// # Layout
//
// A directory of segment files of a fixed size (default 1 MiB), named by a
// monotonically increasing index. Each segment is a header page and then records;
// each record is a group of entries with consecutive sequence numbers, a 32-byte
// header with a CRC-32C (Castagnoli), the caller's body, padded to whole blocks of
// the segment (its header says the block size: 512 to 4096 bytes). The byte layout
// is in edge/store/FORMAT.md ("The write-ahead log").
//
// # Writing
//
// Append writes one record at a block boundary of the active segment with one write
// and makes it durable with one fdatasync before it returns: the caller acknowledges
// what it holds only then. Where the file system offers direct I/O in sectors
// (statx STATX_DIOALIGN, Linux 6.1+: ext4, XFS, btrfs, F2FS), the active segment is
// written with O_DIRECT in blocks of that unit, so a group of a few readings writes
// a sector to the device instead of the 4 KB page a write through the page cache
// dirties; elsewhere (tmpfs, older kernels) it is written through the page cache in
// pages. Segments are preallocated by writing them whole (zeros) once, and reused
// once released (renamed, their old records told apart by the segment index every
// record header carries), so an fdatasync writes the record's blocks and no file
// metadata. A record never shares a block with an earlier one: a write torn by a
// power cut (a disk persists whole sectors) can only damage the record being
// written, never one already acknowledged. A failed write or sync stops the log for
// good.
//
// # Recovery
//
// Open reads every segment and returns the valid prefix of the log (Recovery):
//   - A torn tail — a record that fails its checksum, or does not fit its segment,
//     with no valid record after it in this segment or a later one — is the write a
//     crash interrupted, never acknowledged: it is cut off (its first page zeroed
//     and synced) and reported.
//   - A record that fails its checksum, a damaged record header, a missing segment,
//     an unreadable segment header or a gap in the sequences, with valid records
//     after it, is damage: reading stops there, and what follows is counted
//     (Recovery.After), never silently skipped. The caller reports it and may
//     SetAside the segments, which moves them, byte for byte, out of the log.
//
// # Power loss
//
// Every durable write goes through FS, so that a test can put a file system under
// the log that loses power: waltest.PowerFS keeps only what was synced and tears the
// writes in flight.
package wal
