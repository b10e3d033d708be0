//! Turning core `tracing` events into one line of text, for the bindings that
//! forward them to their language's logger.

use tracing::field::{Field, Visit};

/// The event's message followed by its fields (`message key=value …`).
pub fn event_text(event: &tracing::Event<'_>) -> String {
    #[derive(Default)]
    struct Text(String, String);
    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            } else {
                self.1.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
    }
    let mut text = Text::default();
    event.record(&mut text);
    format!("{}{}", text.0, text.1).trim().to_string()
}
