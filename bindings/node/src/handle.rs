//! The handle of one queued message, as a JavaScript external.
//!
//! `tryEnqueue` returns one handle per message. As a native class instance a
//! handle cost a constructor call, a wrap and entries in napi-rs' tables of
//! live instances and of borrows, made and removed per message and per
//! method call; an external is one V8 value whose finalizer frees the handle
//! when the garbage collector drops it (also when it is never awaited).

use std::sync::Mutex;

use napi::{
    Env,
    bindgen_prelude::{External, PromiseRaw},
};
use napi_derive::napi;

use crate::{
    error::{IntoJs, invalid},
    types::Receipt,
};

/// What an external holds: the core's handle until it is taken.
pub struct Slot(Mutex<Option<jetstation::SendHandle>>);

/// A core handle on its way to JavaScript.
pub(crate) fn new_handle(handle: jetstation::SendHandle) -> External<Slot> {
    External::new(Slot(Mutex::new(Some(handle))))
}

impl Slot {
    fn take(&self) -> napi::Result<jetstation::SendHandle> {
        self.0
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this send handle was already awaited"))
    }
}

/// The receipt if the message is already resolved (no promise needed), as
/// `[partition, sequence, duplicate, msgId]` (the TypeScript `receipt()`
/// makes the object); throws its error if it failed; null while pending.
#[napi(
    ts_args_type = "handle: ExternalObject<'SendHandle'>",
    ts_return_type = "[number, number, boolean, string] | null"
)]
pub fn try_receipt(handle: &External<Slot>) -> napi::Result<Option<(u32, i64, bool, String)>> {
    let mut slot = handle.0.lock().unwrap();
    let Some(h) = slot.as_mut() else {
        return Err(invalid("this send handle was already awaited"));
    };
    match h.try_receipt() {
        None => Ok(None),
        Some(result) => {
            *slot = None;
            let r = result.js()?;
            Ok(Some((
                r.partition,
                r.sequence as i64,
                r.duplicate,
                r.msg_id,
            )))
        }
    }
}

/// Resolves with the receipt once the broker stored the message.
#[napi(
    ts_args_type = "handle: ExternalObject<'SendHandle'>",
    ts_return_type = "Promise<Receipt>"
)]
pub fn wait_receipt<'env>(
    env: &'env Env,
    handle: &External<Slot>,
) -> napi::Result<PromiseRaw<'env, Receipt>> {
    // Taken on the JavaScript thread: the future owns the core's handle and
    // no longer needs the external.
    let h = handle.take()?;
    env.spawn_future(async move { Ok(Receipt::from(h.await.js()?)) })
}
