//! What the benchmarks ran on: cores, CPU model, kernel and the filesystem of the stores.

use std::path::Path;

/// A one-paragraph description of the machine, for the head of the output.
pub fn describe(store_root: &Path) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let fs = filesystem(store_root).unwrap_or_else(|| "unknown filesystem".to_owned());
    format!(
        "{cores} cores ({cpu}), Linux {kernel}; stores under {} ({fs})",
        store_root.display()
    )
}

/// The type and device of the filesystem holding `path`, from the longest matching mount.
fn filesystem(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, at, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(at)
                .then(|| (at.len(), format!("{kind} on {dev}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_this_machine() {
        let d = super::describe(&std::env::temp_dir());
        assert!(d.contains("cores"), "{d}");
    }
}
