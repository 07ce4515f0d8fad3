//! Recovery as the work of a thread of its own, for the hosts that keep
//! running (`flowdesk serve`, the window).
//!
//! [`Engine::recover`] may run an instance on for as long as any run: a
//! request's whole timeout, or a loop of requests up to the step guard. A
//! host that recovered before serving (as every command once did when it
//! opened the database) kept every caller waiting that long, and an
//! operator's `stop` could not get through. Here recovery runs beside the
//! host's calls, each of its steps a transaction of its own like any call's,
//! so a call waits at most for one of them; and it looks again now and then,
//! since a runner in another process can die while the host runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::storage::Storage;
use crate::engine::{Engine, EngineError, Progress};

/// How often the thread looks for instances whose runner died.
pub const RECOVERY_PERIOD: Duration = Duration::from_secs(5);

/// How long stopping waits for the thread to finish the step it is in (a
/// request may take its whole timeout; past this, the process leaves it
/// behind, and a later recovery takes the instance over again).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the thread tells its host: an instance it took over and where it
/// now stands, or why a round of recovery failed.
pub type RecoveryReport = Box<dyn Fn(Result<Progress, EngineError>) + Send>;

/// Recovery running on its own thread until stopped or dropped.
pub struct BackgroundRecovery {
    stopping: Arc<AtomicBool>,
    /// Dropped to wake the thread from its wait between rounds.
    wake: Option<mpsc::Sender<()>>,
    /// Told by the thread when it has ended.
    ended: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundRecovery").field("stopping", &self.stopping.load(Ordering::SeqCst)).finish()
    }
}

impl BackgroundRecovery {
    /// Starts recovering on a new thread: at once, then every `period`.
    pub fn start<S: Storage + 'static>(
        engine: Arc<Engine<S>>,
        period: Duration,
        report: RecoveryReport,
    ) -> std::io::Result<BackgroundRecovery> {
        let stopping = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<()>();
        let (ended_sender, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("flowdesk-recovery".to_owned())
            // Recovered instances run their scripts here.
            .stack_size(crate::model::script::SCRIPT_THREAD_STACK)
            .spawn({
                let stopping = stopping.clone();
                move || {
                    let keep_going = || !stopping.load(Ordering::SeqCst);
                    while keep_going() {
                        match engine.recover_while(&keep_going) {
                            Ok(recovered) => recovered.into_iter().for_each(|progress| report(Ok(progress))),
                            Err(err) => report(Err(err)),
                        }
                        match woken.recv_timeout(period) {
                            Err(RecvTimeoutError::Timeout) => {}
                            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    let _ = ended_sender.send(());
                }
            })?;
        Ok(BackgroundRecovery { stopping, wake: Some(wake), ended, thread: Some(thread) })
    }

    /// Stops the thread: it takes over nothing more and ends after the step
    /// it is in, which is waited for a few seconds at most.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.wake.take());
        // Told, or its sender gone: either way the thread has ended.
        if let Some(thread) = self.thread.take()
            && !matches!(self.ended.recv_timeout(STOP_GRACE), Err(RecvTimeoutError::Timeout))
        {
            let _ = thread.join();
        }
    }
}

impl Drop for BackgroundRecovery {
    fn drop(&mut self) {
        self.shut_down();
    }
}
