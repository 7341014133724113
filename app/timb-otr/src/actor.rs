//! Runs an [`OtrSession`] on its own thread, for callers on other threads or async tasks.
//!
//! The session (and so libotr's userstate) is created on, used on, and dropped on that one
//! thread; callers send it closures. The thread also drives libotr's timer and background
//! key generation, and reports what they produce on the `background` channel.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{AccountConfig, OtrError, OtrSession, Output};

type Job = Box<dyn FnOnce(&mut OtrSession) + Send>;

/// Cloneable, `Send` handle to the OTR thread.
#[derive(Clone)]
pub struct OtrHandle {
    tx: mpsc::Sender<Job>,
}

pub struct OtrActor {
    pub handle: OtrHandle,
    /// Output nobody asked for: timer polls, key generation progress, re-sent queries.
    pub background: mpsc::Receiver<Output>,
    thread: Option<JoinHandle<()>>,
}

/// Longest sleep between polls when libotr asks for none (re-checks expiry of held messages).
const IDLE_POLL: Duration = Duration::from_secs(30);

impl OtrActor {
    pub fn spawn(dir: PathBuf, accounts: Vec<AccountConfig>) -> Result<OtrActor, OtrError> {
        Self::spawn_in(Some(dir), accounts)
    }

    /// [`spawn`](Self::spawn) with the store in `dir`, or in memory only for `None`.
    pub fn spawn_in(
        dir: Option<PathBuf>,
        accounts: Vec<AccountConfig>,
    ) -> Result<OtrActor, OtrError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (btx, brx) = mpsc::channel::<Output>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), OtrError>>();
        let thread = std::thread::Builder::new()
            .name("otr".into())
            .spawn(move || {
                let opened = match &dir {
                    Some(dir) => OtrSession::open(dir, accounts),
                    None => OtrSession::open_in_memory(accounts),
                };
                let mut session = match opened {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let wait = session.poll_interval().unwrap_or(IDLE_POLL).min(IDLE_POLL);
                    match rx.recv_timeout(wait) {
                        Ok(job) => job(&mut session),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if let Ok(out) = session.poll() {
                        if !(out.outgoing.is_empty() && out.events.is_empty())
                            && btx.send(out).is_err()
                        {
                            return;
                        }
                    }
                }
            })
            .map_err(|_| OtrError::Internal)?;
        ready_rx.recv().map_err(|_| OtrError::Internal)??;
        Ok(OtrActor {
            handle: OtrHandle { tx },
            background: brx,
            thread: Some(thread),
        })
    }
}

impl OtrHandle {
    /// Runs `f` on the OTR thread and returns its result.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut OtrSession) -> R + Send + 'static,
    ) -> Result<R, OtrError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| OtrError::Internal)?;
        rx.recv().map_err(|_| OtrError::Internal)
    }
}

impl Drop for OtrActor {
    fn drop(&mut self) {
        // Closing our sender ends the loop once every other handle is gone too.
        let (dead, _) = mpsc::channel();
        self.handle = OtrHandle { tx: dead };
        if let Some(t) = self.thread.take() {
            // Other handles may keep the thread alive; do not block on them.
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}
