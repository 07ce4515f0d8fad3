//! Running the real `flowdesk` binary from the end-to-end tests (`cli.rs`,
//! `bench.rs`): one run to its end, killed by a watchdog if it hangs, and
//! failed if it panicked. Kept apart from `support/`, which holds the engine
//! fixtures: these tests drive the binary only and need none of them.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// A run of the binary that takes longer than this is a hang (an endless
/// script must hit its operation budget long before).
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// What one run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The non-blank lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs a command to its end, killing it (and failing) if it hangs. No run
/// may panic. `shown` is how the run is named in a failure, after `flowdesk`.
pub fn execute(mut command: Command, shown: &str) -> Out {
    let child = command.spawn().expect("spawn flowdesk");
    let pid = child.id();
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(HANG_LIMIT).is_err() {
            // Still running: kill the child we started, by its id.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            return true;
        }
        false
    });
    let output = child.wait_with_output().expect("wait for flowdesk");
    let _ = done.send(());
    let hung = watchdog.join().expect("watchdog");
    let out = Out {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!hung, "`flowdesk {shown}` hung and was killed: {out:?}");
    assert!(!out.stderr.contains("panicked"), "`flowdesk {shown}` panicked: {}", out.stderr);
    out
}
