//! The handle of one queued message, as a tagged JavaScript external (see
//! `external.rs`): freed by its finalizer when the garbage collector drops
//! it, also when it is never awaited.

use std::sync::Mutex;

use napi::{Env, bindgen_prelude::PromiseRaw, sys};
use napi_derive::napi;

use crate::{
    error::{IntoJs, invalid},
    external::{Borrowed, Float64s, Owned, Tagged},
    types::Receipt,
};

/// What a handle's external holds: the core's handle until it is taken.
pub struct Slot(Mutex<Option<jetstation::SendHandle>>);

impl Tagged for Slot {
    const TAG: sys::napi_type_tag = sys::napi_type_tag {
        lower: 0x6a65_7473_7461_7469,
        upper: 0x9d2c_51f0_3b7e_a418,
    };
    const WHAT: &'static str = "a send handle";
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

/// A core handle on its way to JavaScript.
pub(crate) fn new_handle(handle: jetstation::SendHandle) -> Owned<Slot> {
    Owned(Slot(Mutex::new(Some(handle))))
}

type HandleArg = Borrowed<Slot>;

/// The receipt if the message is already resolved (no promise needed): its
/// partition, sequence and duplicate flag (1 or 0) are written to `into`
/// (three numbers) and its message id is returned; the TypeScript
/// `receipt()` makes the object. Throws the message's error if it failed;
/// returns null while it is pending. Three numbers in an array the caller
/// keeps cost less than a new array of four values per message.
#[napi(ts_args_type = "handle: ExternalObject<'SendHandle'>, into: Float64Array")]
pub fn try_receipt(handle: HandleArg, mut into: Float64s) -> napi::Result<Option<String>> {
    let [partition, sequence, duplicate, ..] = &mut *into else {
        return Err(invalid("tryReceipt needs room for three numbers"));
    };
    let mut slot = handle.0.lock().unwrap();
    let Some(h) = slot.as_mut() else {
        return Err(invalid("this send handle was already awaited"));
    };
    match h.try_receipt() {
        None => Ok(None),
        Some(result) => {
            *slot = None;
            let r = result.js()?;
            *partition = f64::from(r.partition);
            *sequence = r.sequence as f64;
            *duplicate = if r.duplicate { 1.0 } else { 0.0 };
            Ok(Some(r.msg_id))
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
    handle: HandleArg,
) -> napi::Result<PromiseRaw<'env, Receipt>> {
    // Taken on the JavaScript thread: the future owns the core's handle and
    // no longer needs the external.
    let h = handle.take()?;
    env.spawn_future(async move { Ok(Receipt::from(h.await.js()?)) })
}
