//! What the report says about the machine it ran on (from /proc, no tool needed).

/// The machine's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online cores.
    pub cores: usize,
    /// Total memory in MiB.
    pub mem_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// /proc/loadavg's first three fields.
    pub loadavg: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first `model name` line of a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// `MemTotal` of a /proc/meminfo text, in MiB.
pub fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

impl Machine {
    /// Reads this machine's description.
    pub fn current() -> Machine {
        Machine {
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown CPU".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            mem_mib: mem_total_mib(&read("/proc/meminfo")).unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            loadavg: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_texts() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7551 32-Core Processor\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 7551 32-Core Processor")
        );
        assert_eq!(mem_total_mib("MemTotal:       24576000 kB\n"), Some(24000));
        assert_eq!(cpu_model(""), None);
        // This machine has a /proc: the live reading finds a model and at least one core.
        let m = Machine::current();
        assert!(m.cores >= 1);
        assert_ne!(m.cpu_model, "");
    }
}
