//! Once started, the daemon gives back the pages of its own binary that starting mapped
//! (BENCHMARKS.md, idle RSS). Most of an idle daemon's resident set is the binary's code and
//! read-only data, mapped by the kernel in blocks around whatever ran: config parsing, key
//! loading, migrations, recovery. Those pages stay in the page cache; unmapping them costs a
//! minor fault (no disk read) when the code runs again. Only mappings that hold nothing but
//! the file's own bytes are dropped: never a writable one, and never one with a page written
//! since it was mapped (relocated read-only data), whose bytes would be lost.

use std::path::Path;

/// The binary's clean, read-only mappings, unmapped; the number of bytes they spanned.
pub fn drop_start_up_pages() -> usize {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return 0;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut dropped = 0;
    for (start, end) in clean_read_only(&smaps, &exe) {
        let len = end - start;
        let Some(addr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of the executable that is not writable and has
        // no anonymous (written) page: every byte in it is the file's, and after
        // MADV_DONTNEED a touch maps the same bytes again from the page cache.
        let done = unsafe {
            nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED)
        };
        if done.is_ok() {
            dropped += len;
        }
    }
    dropped
}

/// The address ranges in `smaps` that map `exe`, are not writable and hold no anonymous page.
fn clean_read_only(smaps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let exe = exe.to_string_lossy();
    let mut found = Vec::new();
    // (range, whether it qualifies so far)
    let mut current: Option<((usize, usize), bool)> = None;
    let mut finish = |current: &mut Option<((usize, usize), bool)>| {
        if let Some((range, true)) = current.take() {
            found.push(range);
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            finish(&mut current);
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let ok = path == exe && perms.starts_with('r') && !perms.contains('w');
            current = Some(((start, end), ok));
        } else if first == "Anonymous:"
            && fields.next() != Some("0")
            && let Some((_, ok)) = current.as_mut()
        {
            *ok = false;
        }
    }
    finish(&mut current);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5600a0000000-5600a0100000 r--p 00000000 08:01 42 /usr/bin/scanpay
Size:               1024 kB
Anonymous:             0 kB
5600a0100000-5600a0800000 r-xp 00100000 08:01 42 /usr/bin/scanpay
Size:               7168 kB
Anonymous:             0 kB
5600a0800000-5600a0900000 r--p 00800000 08:01 42 /usr/bin/scanpay
Size:               1024 kB
Anonymous:           900 kB
5600a0900000-5600a0910000 rw-p 00900000 08:01 42 /usr/bin/scanpay
Size:                 64 kB
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1024 kB
Anonymous:             0 kB
";

    #[test]
    fn only_the_binarys_clean_read_only_mappings_are_dropped() {
        let found = clean_read_only(SMAPS, Path::new("/usr/bin/scanpay"));
        assert_eq!(
            found,
            [
                (0x5600a0000000, 0x5600a0100000),
                (0x5600a0100000, 0x5600a0800000)
            ]
        );
    }

    #[test]
    fn this_process_keeps_running_after_its_pages_are_dropped() {
        let dropped = drop_start_up_pages();
        assert!(dropped > 0, "the test binary has clean code mappings");
        // Its code runs again and its relocated data (formatting tables, vtables) still reads.
        let mut words: Vec<String> = "c b a".split(' ').map(str::to_string).collect();
        words.sort();
        assert_eq!(format!("{words:?}"), r#"["a", "b", "c"]"#);
        assert!(clean_read_only(SMAPS, Path::new("/nowhere")).is_empty());
    }
}
