//! Rust values handed to JavaScript as tagged Node-API externals.
//!
//! A value passed per message (a send handle, the producer it is queued on)
//! is not a napi-rs class instance: an instance costs a constructor call, a
//! wrap and entries in napi-rs' tables of live instances, and each method
//! call on one registers a borrow in a process-wide table behind a lock
//! (about 3 % of the JavaScript thread's samples for one call per message);
//! napi-rs' `External` still records every payload in a table behind a
//! process-wide lock, to tell its own externals from others. Here a value is
//! a plain Node-API external whose finalizer frees it when the garbage
//! collector drops it, and a Node-API type tag per kind of value tells ours
//! from any other external. This module holds the only `unsafe` code of
//! the Node binding, each block with its reason.
#![allow(unsafe_code)]

use std::{ffi::c_void, marker::PhantomData, ptr};

use napi::{
    Error, Status,
    bindgen_prelude::{FromNapiValue, ToNapiValue},
    check_status, sys,
};

/// A kind of value that crosses as an external.
pub trait Tagged: Send + 'static {
    /// Marks the externals of this kind (a random 128-bit value).
    const TAG: sys::napi_type_tag;
    /// What the value is, for the error when something else is passed.
    const WHAT: &'static str;
}

unsafe extern "C" fn finalize<T: Tagged>(
    _env: sys::napi_env,
    data: *mut c_void,
    _hint: *mut c_void,
) {
    // SAFETY: `data` is the box leaked in `to_napi_value`; Node-API calls a
    // finalizer once, after the external became unreachable.
    drop(unsafe { Box::from_raw(data.cast::<T>()) });
}

/// A value on its way to JavaScript, which owns it from then on.
pub struct Owned<T: Tagged>(pub(crate) T);

impl<T: Tagged> ToNapiValue for Owned<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let data = Box::into_raw(Box::new(val.0));
        let mut value = ptr::null_mut();
        // SAFETY: called by napi-rs with the env of the JavaScript thread;
        // the external owns `data` from here, and its finalizer frees it.
        let created = unsafe {
            sys::napi_create_external(
                env,
                data.cast(),
                Some(finalize::<T>),
                ptr::null_mut(),
                &mut value,
            )
        };
        if created != sys::Status::napi_ok {
            // SAFETY: not handed over: the box is still ours.
            drop(unsafe { Box::from_raw(data) });
            check_status!(created, "could not make {}", T::WHAT)?;
        }
        // SAFETY: `value` is the external just made, on the same env.
        check_status!(
            unsafe { sys::napi_type_tag_object(env, value, &T::TAG) },
            "could not tag {}",
            T::WHAT
        )?;
        Ok(value)
    }
}

/// A value passed back from JavaScript. It points into the external, which
/// the caller's argument keeps alive for the call it came with: it is used
/// only during that call (it is neither `Send` nor kept).
pub struct Borrowed<T: Tagged>(*const T, PhantomData<T>);

impl<T: Tagged> FromNapiValue for Borrowed<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut kind = 0;
        // SAFETY (all three calls): napi-rs passes the env and an argument of
        // the current call.
        check_status!(unsafe { sys::napi_typeof(env, value, &mut kind) })?;
        let mut ours = false;
        if kind == sys::ValueType::napi_external {
            check_status!(unsafe {
                sys::napi_check_object_type_tag(env, value, &T::TAG, &mut ours)
            })?;
        }
        if !ours {
            return Err(Error::new(
                Status::InvalidArg,
                format!("expected {}", T::WHAT),
            ));
        }
        let mut data = ptr::null_mut();
        check_status!(unsafe { sys::napi_get_value_external(env, value, &mut data) })?;
        Ok(Self(data.cast(), PhantomData))
    }
}

impl<T: Tagged> std::ops::Deref for Borrowed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: an external with `T`'s tag points to a live `T` (made in
        // `to_napi_value`, freed only by the finalizer), and the argument
        // this came from keeps the external reachable during the call.
        unsafe { &*self.0 }
    }
}

/// A `Float64Array` argument written in place during the call. Read with
/// Node-API's typed-array call rather than as a napi-rs `&mut [f64]`, which
/// registers a borrow in a process-wide table behind a lock on every call
/// (about 2 % of the JavaScript thread's samples for one call per message).
pub struct Float64s(*mut f64, usize);

impl FromNapiValue for Float64s {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut typed = false;
        // SAFETY (both calls): napi-rs passes the env and an argument of the
        // current call; the out-pointers are locals.
        check_status!(unsafe { sys::napi_is_typedarray(env, value, &mut typed) })?;
        let (mut kind, mut length, mut data) = (0, 0, ptr::null_mut());
        if typed {
            check_status!(unsafe {
                sys::napi_get_typedarray_info(
                    env,
                    value,
                    &mut kind,
                    &mut length,
                    &mut data,
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            })?;
        }
        if !typed || kind != sys::TypedarrayType::float64_array {
            return Err(Error::new(Status::InvalidArg, "expected a Float64Array"));
        }
        Ok(Self(data.cast(), length))
    }
}

impl std::ops::Deref for Float64s {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        if self.1 == 0 {
            return &[];
        }
        // SAFETY: as in `deref_mut` (an empty array may have no pointer,
        // hence the check above).
        unsafe { std::slice::from_raw_parts(self.0, self.1) }
    }
}

impl std::ops::DerefMut for Float64s {
    fn deref_mut(&mut self) -> &mut [f64] {
        if self.1 == 0 {
            return &mut [];
        }
        // SAFETY: Node-API gave the array's element pointer and length; the
        // argument keeps the array (and its buffer) alive during the call,
        // which is the only time this is used (it is neither `Send` nor
        // kept), and JavaScript cannot run while the call does.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}
