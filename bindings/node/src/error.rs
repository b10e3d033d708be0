//! Core errors to JavaScript: the message is prefixed with the stable kind
//! (`[not_found] …`); `lib/errors.js` turns it into the matching
//! `JetstationError` subclass with `code` and `kind`.

pub(crate) fn to_js(err: jetstation::Error) -> napi::Error {
    napi::Error::from_reason(format!("[{}] {}", err.kind().as_str(), err.message()))
}

pub(crate) fn invalid(message: impl Into<String>) -> napi::Error {
    to_js(jetstation::Error::new(
        jetstation::ErrorKind::InvalidArgument,
        message,
    ))
}

pub(crate) trait IntoJs<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJs<T> for Result<T, jetstation::Error> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_js)
    }
}
