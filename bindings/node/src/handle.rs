//! The handle of one queued message, as a JavaScript external.
//!
//! `tryEnqueue` returns one handle per message. As a native class instance a
//! handle cost a constructor call, a wrap and entries in napi-rs' tables of
//! live instances and of borrows, made and removed per message and per
//! method call; napi-rs' `External` still records every payload in a table
//! behind a process-wide lock, to tell its own externals from others. Here a
//! handle is a plain Node-API external whose finalizer frees it when the
//! garbage collector drops it (also when it is never awaited), and a Node-API
//! type tag tells ours from any other external. This module is the one place
//! of the Node binding with `unsafe` code: five Node-API calls, the box the
//! external owns and one dereference, each with its reason below.
#![allow(unsafe_code)]

use std::{ffi::c_void, ptr, sync::Mutex};

use napi::{
    Env, Error, Status,
    bindgen_prelude::{FromNapiValue, PromiseRaw, ToNapiValue},
    check_status, sys,
};
use napi_derive::napi;

use crate::{
    error::{IntoJs, invalid},
    types::Receipt,
};

/// Marks the externals made here (a random 128-bit value).
const TAG: sys::napi_type_tag = sys::napi_type_tag {
    lower: 0x6a65_7473_7461_7469,
    upper: 0x9d2c_51f0_3b7e_a418,
};

/// What an external points to: the core's handle until it is taken.
struct Slot(Mutex<Option<jetstation::SendHandle>>);

impl Slot {
    fn take(&self) -> napi::Result<jetstation::SendHandle> {
        self.0
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| invalid("this send handle was already awaited"))
    }
}

unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the box leaked in `to_napi_value`; Node-API calls a
    // finalizer once, after the external became unreachable.
    drop(unsafe { Box::from_raw(data.cast::<Slot>()) });
}

/// A core handle on its way to JavaScript.
pub struct NewHandle(pub(crate) jetstation::SendHandle);

impl ToNapiValue for NewHandle {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let data = Box::into_raw(Box::new(Slot(Mutex::new(Some(val.0)))));
        let mut value = ptr::null_mut();
        // SAFETY: called by napi-rs with the env of the JavaScript thread;
        // the external owns `data` from here, and its finalizer frees it.
        let created = unsafe {
            sys::napi_create_external(
                env,
                data.cast(),
                Some(finalize),
                ptr::null_mut(),
                &mut value,
            )
        };
        if created != sys::Status::napi_ok {
            // SAFETY: not handed over: the box is still ours.
            drop(unsafe { Box::from_raw(data) });
            check_status!(created, "could not make a send handle")?;
        }
        // SAFETY: `value` is the external just made, on the same env.
        check_status!(
            unsafe { sys::napi_type_tag_object(env, value, &TAG) },
            "could not tag a send handle"
        )?;
        Ok(value)
    }
}

/// A handle passed back from JavaScript. It points into the external, which
/// the caller's argument keeps alive for the call it came with: it is used
/// only during that call.
pub struct HandleArg(*const Slot);

impl FromNapiValue for HandleArg {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut kind = 0;
        // SAFETY (all three calls): napi-rs passes the env and an argument of
        // the current call.
        check_status!(unsafe { sys::napi_typeof(env, value, &mut kind) })?;
        let mut ours = false;
        if kind == sys::ValueType::napi_external {
            check_status!(unsafe { sys::napi_check_object_type_tag(env, value, &TAG, &mut ours) })?;
        }
        if !ours {
            return Err(Error::new(
                Status::InvalidArg,
                "expected a send handle".to_string(),
            ));
        }
        let mut data = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_value_external(env, value, &mut data) })?;
        Ok(Self(data.cast()))
    }
}

impl HandleArg {
    fn slot(&self) -> &Slot {
        // SAFETY: a tagged external points to a live `Slot` (made in
        // `to_napi_value`, freed only by the finalizer), and the argument
        // this came from keeps the external reachable during the call.
        unsafe { &*self.0 }
    }
}

/// A `Float64Array` argument, written in place (named, so that napi-rs reads
/// it as a typed array rather than as a native object borrowed mutably).
type Numbers<'a> = &'a mut [f64];

/// The receipt if the message is already resolved (no promise needed): its
/// partition, sequence and duplicate flag (1 or 0) are written to `into`
/// (three numbers) and its message id is returned; the TypeScript
/// `receipt()` makes the object. Throws the message's error if it failed;
/// returns null while it is pending. Three numbers in an array the caller
/// keeps cost less than a new array of four values per message.
#[napi(ts_args_type = "handle: ExternalObject<'SendHandle'>, into: Float64Array")]
pub fn try_receipt(handle: HandleArg, into: Numbers) -> napi::Result<Option<String>> {
    let [partition, sequence, duplicate, ..] = into else {
        return Err(invalid("tryReceipt needs room for three numbers"));
    };
    let mut slot = handle.slot().0.lock().unwrap();
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
    let h = handle.slot().take()?;
    env.spawn_future(async move { Ok(Receipt::from(h.await.js()?)) })
}
