//! Reading the VM console: libtest results, the sentinel, and the per-kernel table.
//!
//! `/init` prints `PODIAM-VMTEST-BEGIN`, runs the libtest binary (lines
//! `test NAME ... ok|FAILED|ignored`, then `---- NAME stdout ----` sections for failures),
//! then exactly one `PODIAM-VMTEST-RESULT rc=N` line.
use std::time::Duration;

use super::qemu::Ending;

/// Marker printed by `/init` before the tests.
pub const BEGIN: &str = "PODIAM-VMTEST-BEGIN";
/// Result sentinel printed by `/init` after the tests: `PODIAM-VMTEST-RESULT rc=N`.
pub const SENTINEL: &str = "PODIAM-VMTEST-RESULT rc=";

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub name: String,
    /// `ok`, `FAILED` or `ignored`.
    pub status: String,
    /// The test's captured output (failed tests only).
    pub output: String,
}

/// Everything learned from one kernel's console.
#[derive(Debug, Clone)]
pub struct KernelResult {
    pub label: String,
    pub package: String,
    pub release: String,
    pub tests: Vec<TestOutcome>,
    /// The test binary's exit code from the sentinel, `None` if the sentinel is missing.
    pub rc: Option<i32>,
    pub ending: Ending,
    pub elapsed: Duration,
    /// The last console lines (shown when the kernel fails without a failed test: panic,
    /// timeout, missing sentinel, a crash of the test binary).
    pub console_tail: Vec<String>,
}

impl KernelResult {
    /// Passed: sentinel with rc 0, at least one test ran, none failed, no panic/timeout.
    pub fn passed(&self) -> bool {
        self.rc == Some(0)
            && self.ending == Ending::Exited
            && !self.tests.is_empty()
            && self.tests.iter().all(|t| t.status != "FAILED")
    }

    /// One-word reason for a failure (or `pass`).
    pub fn verdict(&self) -> String {
        if self.passed() {
            return "PASS".into();
        }
        match (self.ending, self.rc) {
            (Ending::Panic, _) => "FAIL (kernel panic)".into(),
            (Ending::Timeout, _) => "FAIL (timeout)".into(),
            (_, None) => "FAIL (no sentinel)".into(),
            (_, Some(0)) if self.tests.is_empty() => "FAIL (no tests ran)".into(),
            (_, Some(rc)) => format!("FAIL (rc={rc})"),
        }
    }
}

/// The sentinel's exit code, if the line is the sentinel.
pub fn sentinel_rc(line: &str) -> Option<i32> {
    line.trim().strip_prefix(SENTINEL)?.trim().parse().ok()
}

/// Parses libtest results and the sentinel from console lines.
pub fn parse(lines: &[String]) -> (Vec<TestOutcome>, Option<i32>) {
    let mut tests: Vec<TestOutcome> = Vec::new();
    let mut rc = None;
    let mut current: Option<usize> = None;
    let mut began = false;
    for line in lines {
        if line.trim() == BEGIN {
            began = true;
            continue;
        }
        if let Some(code) = sentinel_rc(line) {
            rc = Some(code);
            current = None;
            continue;
        }
        if !began {
            continue;
        }
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, status)) = rest.rsplit_once(" ... ")
        {
            let status = status.trim();
            if ["ok", "FAILED", "ignored"].contains(&status) {
                tests.push(TestOutcome {
                    name: name.trim().to_string(),
                    status: status.to_string(),
                    output: String::new(),
                });
                continue;
            }
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            current = tests.iter().position(|t| t.name == name);
            continue;
        }
        if line.trim() == "failures:" || line.starts_with("test result:") {
            current = None;
            continue;
        }
        if let Some(i) = current {
            tests[i].output.push_str(line);
            tests[i].output.push('\n');
        }
    }
    (tests, rc)
}

/// The pass/fail table (one row per kernel and test) and each failed test's output.
pub fn render(results: &[KernelResult]) -> String {
    let mut s = String::new();
    s.push_str("\nvm-test results\n");
    let width = results
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.name.len()))
        .max()
        .unwrap_or(10)
        .max(10);
    for r in results {
        s.push_str(&format!(
            "\n== kernel {} ({}, {}): {} in {:.0?}\n",
            r.label,
            r.release,
            r.package,
            r.verdict(),
            r.elapsed
        ));
        for t in &r.tests {
            let st = match t.status.as_str() {
                "ok" => "pass",
                "FAILED" => "FAIL",
                other => other,
            };
            s.push_str(&format!("   {:width$}  {st}\n", t.name));
        }
        if r.tests.is_empty() {
            s.push_str("   (no test results on the console)\n");
        }
    }
    for r in results {
        for t in r.tests.iter().filter(|t| t.status == "FAILED") {
            s.push_str(&format!(
                "\n---- kernel {}: {} output ----\n{}\n",
                r.label,
                t.name,
                t.output.trim()
            ));
        }
    }
    for r in results.iter().filter(|r| !r.passed()) {
        if r.tests.iter().all(|t| t.status != "FAILED") {
            s.push_str(&format!(
                "\n---- kernel {}: last console lines ----\n{}\n",
                r.label,
                r.console_tail.join("\n")
            ));
        }
    }
    let total: Duration = results.iter().map(|r| r.elapsed).sum();
    s.push_str(&format!("\ntotal VM time: {:.1}s\n", total.as_secs_f64()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn parses_libtest_output_and_sentinel() {
        let out = lines(
            "test early ... ok\n\
             PODIAM-VMTEST-BEGIN\n\
             running 3 tests\n\
             test a ... ok\n\
             test b ... FAILED\n\
             test c ... ignored\n\
             \n\
             failures:\n\
             \n\
             ---- b stdout ----\n\
             thread 'b' panicked at tests/tests/datapath.rs:1:1:\n\
             assertion failed\n\
             \n\
             failures:\n\
             \x20   b\n\
             \n\
             test result: FAILED. 1 passed; 1 failed; 1 ignored\n\
             PODIAM-VMTEST-RESULT rc=101\n",
        );
        let (tests, rc) = parse(&out);
        assert_eq!(rc, Some(101));
        assert_eq!(tests.len(), 3, "lines before BEGIN are ignored");
        assert_eq!(tests[1].status, "FAILED");
        assert!(tests[1].output.contains("assertion failed"));
        assert!(!tests[1].output.contains("test result"));
        assert!(tests[0].output.is_empty());
    }

    #[test]
    fn verdicts() {
        let mut r = KernelResult {
            label: "6.1".into(),
            package: "p".into(),
            release: "r".into(),
            tests: vec![TestOutcome {
                name: "a".into(),
                status: "ok".into(),
                output: String::new(),
            }],
            rc: Some(0),
            ending: Ending::Exited,
            elapsed: Duration::from_secs(1),
            console_tail: vec!["Kernel panic - not syncing".into()],
        };
        assert!(r.passed());
        r.rc = None;
        assert_eq!(r.verdict(), "FAIL (no sentinel)");
        r.rc = Some(0);
        r.ending = Ending::Timeout;
        assert_eq!(r.verdict(), "FAIL (timeout)");
        r.ending = Ending::Exited;
        r.tests.clear();
        assert_eq!(r.verdict(), "FAIL (no tests ran)");
        let text = render(&[r]);
        assert!(text.contains("no test results"));
        assert!(text.contains("Kernel panic - not syncing"), "{text}");
        assert_eq!(sentinel_rc("PODIAM-VMTEST-RESULT rc=0"), Some(0));
        assert_eq!(sentinel_rc("echo PODIAM-VMTEST-RESULT rc=$rc"), None);
    }
}
