//! Giving back the code pages that only start-up used.
//!
//! Most of the agent's resident memory when idle is not its data but its code: the pages of
//! the executable and of the shared libraries that were run once, while the configuration
//! was parsed, TLS set up and the sources started, and that stay mapped for the life of the
//! process (the kernel also maps up to 16 neighbours of every page it faults in). Measured
//! with the default idle configuration: 2.6 MiB anonymous and 14.1 MiB file-backed.
//!
//! [`release_start_up_pages`] asks the kernel to unmap those pages (`MADV_DONTNEED`) from
//! the mappings where that loses nothing: read-only, private, file-backed mappings that hold
//! no page of their own (no copy-on-write copy, such as relocated data). The next time a
//! released page is needed it is mapped again from the page cache, or read from the file:
//! the code runs as before, and what stays resident is what the agent still uses. The pages
//! stay in the page cache until the kernel needs the memory; unmapped, they are the first
//! it can take.

use std::fs;
use std::io;

/// What one [`release_start_up_pages`] call gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Mappings whose pages were unmapped.
    pub mappings: usize,
    /// Resident bytes they held.
    pub bytes: u64,
}

/// One mapping of `/proc/<pid>/smaps`: where it is, what backs it, and how much of it is
/// resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: usize,
    /// Address after the last byte.
    pub end: usize,
    /// `rwxp`-style permissions (`p` private, `s` shared).
    pub perms: String,
    /// The mapped file's path, a pseudo-path such as `[heap]`, or empty (anonymous).
    pub path: String,
    /// Resident size, KiB.
    pub rss_kb: u64,
    /// Resident pages of its own (anonymous or copied on write), KiB.
    pub anonymous_kb: u64,
}

impl Mapping {
    /// Backed by a file, not anonymous or `[heap]`, `[vdso]`...
    pub fn file_backed(&self) -> bool {
        self.path.starts_with('/')
    }

    /// Read-only, private and backed by a file, with resident pages and not one page of its
    /// own: unmapping it loses nothing, every page comes back from the file as it was.
    fn releasable(&self) -> bool {
        let p = self.perms.as_bytes();
        p.len() == 4
            && p[0] == b'r'
            && p[1] == b'-'
            && p[3] == b'p'
            && self.file_backed()
            && self.rss_kb > 0
            && self.anonymous_kb == 0
    }
}

/// Parses the text of `/proc/<pid>/smaps`: each mapping's address range, permissions and
/// path, with its `Rss` and `Anonymous` sizes.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some(key) = first.strip_suffix(':') {
            // "Rss:  1234 kB"
            let value = fields.next().and_then(|v| v.parse::<u64>().ok());
            if let (Some(m), Some(v)) = (out.last_mut(), value) {
                match key {
                    "Rss" => m.rss_kb = v,
                    "Anonymous" => m.anonymous_kb = v,
                    _ => {}
                }
            }
            continue;
        }
        // "start-end perms offset dev inode [path]"; the path may hold spaces.
        let Some((start, end)) = first.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let perms = fields.next().unwrap_or("").to_owned();
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
        }
        out.push(Mapping {
            start,
            end,
            perms,
            path: rest.trim().to_owned(),
            rss_kb: 0,
            anonymous_kb: 0,
        });
    }
    out
}

/// Unmaps the resident pages of this process's read-only file-backed mappings that hold no
/// page of their own (see the module documentation). Safe to call at any time, from any
/// thread: a page that is used again is faulted back in.
pub fn release_start_up_pages() -> io::Result<Released> {
    let smaps = fs::read_to_string("/proc/self/smaps")?;
    let mut released = Released::default();
    for m in parse_smaps(&smaps).iter().filter(|m| m.releasable()) {
        // SAFETY: the range is a whole mapping of this process, taken from the kernel's own
        // list. It is private, read-only and file-backed, and holds no anonymous
        // (copy-on-write) page, so MADV_DONTNEED only drops page-table entries: every page
        // reads back from the file with the same contents. Nothing in the agent writes to
        // a read-only mapping, so none can gain a private page between the read above and
        // this call.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            released.mappings += 1;
            released.bytes += m.rss_kb * 1024;
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0200000 r--p 00000000 fe:01 1234   /usr/bin/logops-agent
Size:               2048 kB
Rss:                 512 kB
Anonymous:             0 kB
55d0c0200000-55d0c0900000 r-xp 00200000 fe:01 1234   /usr/bin/logops-agent
Rss:                3000 kB
Anonymous:             0 kB
55d0c0900000-55d0c0980000 r--p 00900000 fe:01 1234   /usr/bin/logops-agent
Rss:                 512 kB
Anonymous:           508 kB
55d0c0980000-55d0c0990000 rw-p 00980000 fe:01 1234   /usr/bin/logops-agent
Rss:                  64 kB
Anonymous:            64 kB
55d0c1000000-55d0c2000000 rw-p 00000000 00:00 0      [heap]
Rss:                 900 kB
Anonymous:           900 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:01 99     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                   0 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-s 00000000 00:01 7      /dev/shm/x
Rss:                  40 kB
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7f0000400000-7f0000401000 r-xp 00000000 fe:01 77     /opt/with space/lib.so
Rss:                   4 kB
Anonymous:             0 kB
";

    #[test]
    fn only_read_only_private_file_mappings_without_own_pages_are_released() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 9);
        assert_eq!(maps[1].start, 0x55d0c0200000);
        assert_eq!(maps[1].end, 0x55d0c0900000);
        assert_eq!(maps[2].anonymous_kb, 508);
        assert_eq!(maps[4].path, "[heap]");
        assert_eq!(maps[8].path, "/opt/with space/lib.so");
        let releasable: Vec<(&str, u64)> = maps
            .iter()
            .filter(|m| m.releasable())
            .map(|m| (m.perms.as_str(), m.rss_kb))
            .collect();
        // .rodata and .text of the binary, and a library whose path has a space; not the
        // relocated read-only data, the writable data, the heap, a library with nothing
        // resident, a shared mapping or the vDSO.
        assert_eq!(releasable, [("r--p", 512), ("r-xp", 3000), ("r-xp", 4)]);
    }

    #[test]
    fn releasing_keeps_the_process_working_and_lowers_its_resident_code() {
        fn rss_file_kb() -> u64 {
            let status = fs::read_to_string("/proc/self/status").unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap()
        }
        let before = rss_file_kb();
        let released = release_start_up_pages().unwrap();
        assert!(released.mappings > 0 && released.bytes > 0, "{released:?}");
        // Right after, before most of the code runs again, fewer file pages are mapped.
        let after = rss_file_kb();
        assert!(
            after < before,
            "RssFile {before} kB before, {after} kB after"
        );
        // And the code and read-only data still work: formatting, allocation, a syscall.
        let text = format!("{:?}", (1..5).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(text, "[2, 4, 6, 8]");
        assert!(fs::metadata("/proc/self/status").is_ok());
    }
}
