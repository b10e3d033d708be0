//! The one tokio runtime of the Python module, and how Rust futures become
//! Python awaitables.
//!
//! The runtime belongs to the process that created it: after `fork()` a
//! child's runtime threads do not exist, so a child gets a runtime of its own
//! on first use. Objects created before the fork keep connections the child
//! cannot use; their methods raise `ClosedError` saying to connect again.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use pyo3::prelude::*;
use pyo3_async_runtimes::{
    TaskLocals,
    generic::{self, ContextExt, Runtime as GenericRuntime},
};
use tokio::{runtime::Runtime, sync::OnceCell, task};

/// The runtime and the process id it was built in.
type Owned = Option<(u32, Arc<Runtime>)>;

static RUNTIME: OnceLock<Mutex<Owned>> = OnceLock::new();

/// This process's id, once read; 0 until then.
static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id. Every call into the module checks it (objects are
/// refused across `fork()`), and asking the system is a system call each
/// time, so it is read once and again in a child: the package registers
/// [`after_fork_in_child`] with `os.register_at_fork`.
pub(crate) fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

/// Run by Python in a child process right after `os.fork()`.
#[pyfunction]
pub(crate) fn after_fork_in_child() {
    PID.store(std::process::id(), Ordering::Relaxed);
}

/// This process's runtime (a new one after `fork()`).
pub(crate) fn runtime() -> Arc<Runtime> {
    let pid = pid();
    let mut slot = RUNTIME.get_or_init(Mutex::default).lock().unwrap();
    match &*slot {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("jetstation")
                    .enable_all()
                    .build()
                    .expect("tokio runtime"),
            );
            // A runtime inherited through fork() has no threads: forget it
            // without running its destructor, which would wait for them.
            if let Some((_, old)) = slot.take() {
                std::mem::forget(old);
            }
            *slot = Some((pid, rt.clone()));
            rt
        }
    }
}

/// Stops this process's runtime, with the GIL released so that a runtime
/// thread waiting to enter Python can finish; called at interpreter exit, so
/// that no runtime thread touches Python while it finalizes.
pub(crate) fn shutdown(py: Python<'_>) {
    let taken = RUNTIME.get().and_then(|slot| slot.lock().unwrap().take());
    if let Some((pid, rt)) = taken {
        if pid == self::pid() {
            if let Ok(rt) = Arc::try_unwrap(rt) {
                py.detach(|| rt.shutdown_timeout(std::time::Duration::from_secs(2)));
            }
        } else {
            // Inherited through fork(): it has no threads to stop.
            std::mem::forget(rt);
        }
    }
}

/// The process that created an object, to refuse use across `fork()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner(u32);

impl Owner {
    pub(crate) fn current() -> Self {
        Self(pid())
    }

    pub(crate) fn check(self) -> PyResult<()> {
        if self.0 == pid() {
            Ok(())
        } else {
            Err(crate::error::closed_after_fork())
        }
    }
}

pub(crate) struct JetRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for JetRuntime {
    type JoinError = task::JoinError;
    type JoinHandle = task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        runtime().spawn_blocking(f)
    }
}

impl ContextExt for JetRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// A Python awaitable running `fut` on the runtime. The GIL is not held
/// while it runs; cancelling the awaitable drops the future.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    generic::future_into_py::<JetRuntime, _, T>(py, fut)
}
