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
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use pyo3::prelude::*;
use pyo3_async_runtimes::{
    TaskLocals,
    generic::{self, ContextExt, Runtime as GenericRuntime},
};
use tokio::{
    runtime::{Handle, Runtime},
    sync::OnceCell,
    task,
};

/// The runtime of one process. Everything else holds only a [`Handle`],
/// which does not own the runtime: the runtime is dropped only here, never
/// on one of its own threads (where dropping it panics).
struct Owned {
    pid: u32,
    handle: Handle,
    /// `None` once stopped at interpreter exit: the handle stays, and a
    /// task spawned on it then is cancelled at once, rather than a new
    /// runtime being started while Python finalizes.
    runtime: Option<Runtime>,
}

static RUNTIME: Mutex<Option<Owned>> = Mutex::new(None);

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
pub(crate) fn runtime() -> Handle {
    let pid = pid();
    let mut slot = RUNTIME.lock().unwrap();
    match &*slot {
        Some(owned) if owned.pid == pid => owned.handle.clone(),
        _ => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("jetstation")
                .enable_all()
                .build()
                .expect("tokio runtime");
            let handle = runtime.handle().clone();
            // A runtime inherited through fork() has no threads: forget it
            // without running its destructor, which would wait for them.
            if let Some(inherited) = slot.take() {
                std::mem::forget(inherited);
            }
            *slot = Some(Owned {
                pid,
                handle: handle.clone(),
                runtime: Some(runtime),
            });
            handle
        }
    }
}

/// Stops this process's runtime, with the GIL released so that a runtime
/// thread waiting to enter Python can finish; called at interpreter exit, so
/// that no runtime thread touches Python while it finalizes.
pub(crate) fn shutdown(py: Python<'_>) {
    let taken = match RUNTIME.lock().unwrap().as_mut() {
        Some(owned) if owned.pid == pid() => owned.runtime.take(),
        // None yet, or inherited through fork(): no threads to stop.
        _ => None,
    };
    if let Some(runtime) = taken {
        py.detach(|| runtime.shutdown_timeout(std::time::Duration::from_secs(2)));
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

/// A Python awaitable that is done already: awaiting it goes on at once,
/// without a turn of the event loop (an asyncio future that is done
/// returns its result without yielding).
pub(crate) fn ready<'py, T>(py: Python<'py>, value: T) -> PyResult<Bound<'py, PyAny>>
where
    T: IntoPyObject<'py>,
{
    let future = py
        .import("asyncio")?
        .call_method0("get_running_loop")?
        .call_method0("create_future")?;
    future.call_method1("set_result", (value,))?;
    Ok(future)
}
