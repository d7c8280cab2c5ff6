//! Secrets (API tokens) that must never reach the store, logs, errors or debug output.
//!
//! Two defences. [`Secret`] redacts itself in `Debug` and `Display`, so code cannot print one
//! by accident. And every secret value read from the configuration (or issued to us, like an
//! Entra access token) is registered here when it is wrapped, so that [`redact`] can take it
//! out of text that came from somewhere else: a server that echoes the token in an error
//! detail, a proxy that puts it in a redirect URL. [`redact`] is the one redaction point: the
//! HTTP and source errors apply it when they are displayed, and the log writer, the CLI's
//! error output and the store's error and message columns apply it before anything is
//! written.
use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

/// A token read from an environment variable or a file. `Debug` and `Display` redact it;
/// the only way to the value is [`Secret::expose`], used where a request header is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value, and register it for [`redact`].
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The value, for the one place it is sent (a header, a form).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// Secret values shorter than this are not registered: replacing every "ab" in a message would
/// hide more than it protects, and no real token is that short.
const MIN_REDACTED_LEN: usize = 6;

/// Every registered value, and the forms a server may echo it in (percent-encoded in a URL,
/// escaped in JSON), longest first so that a longer form is replaced before its parts.
static REGISTERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Register a secret value so that [`redact`] removes it from any text from now on.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < MIN_REDACTED_LEN {
        return;
    }
    let forms = [
        value.to_string(),
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
        serde_json::to_string(value)
            .map(|s| s[1..s.len() - 1].to_string())
            .unwrap_or_default(),
    ];
    let mut registered = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if form.len() >= MIN_REDACTED_LEN && !registered.contains(&form) {
            registered.push(form);
        }
    }
    registered.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// `text` with every registered secret value replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let registered = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
    if !registered.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in registered.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    Cow::Owned(out)
}

/// A writer that redacts what it is given before passing it on: the log output. It gathers one
/// log event (the formatter writes an event in one or more calls) and writes it redacted when
/// dropped, so a secret split over two calls is still found.
pub struct RedactingWriter<W: std::io::Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: std::io::Write> RedactingWriter<W> {
    /// A writer that redacts every line before `inner` sees it.
    pub fn new(inner: W) -> Self {
        RedactingWriter { inner, buf: Vec::new() }
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return self.inner.flush();
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = redact(&text);
        self.inner.write_all(clean.as_bytes())?;
        self.buf.clear();
        self.inner.flush()
    }
}

impl<W: std::io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn registered_values_are_redacted_in_every_form() {
        let _s = Secret::new("tok/with+odd chars\"9");
        assert_eq!(
            redact("detail: bad token tok/with+odd chars\"9 given"),
            "detail: bad token *** given"
        );
        assert_eq!(redact("https://x/?t=tok%2Fwith%2Bodd%20chars%229"), "https://x/?t=***");
        assert_eq!(redact("https://x/?t=tok%2Fwith%2Bodd+chars%229"), "https://x/?t=***");
        assert_eq!(redact(r#"{"detail":"tok/with+odd chars\"9"}"#), r#"{"detail":"***"}"#);
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(redact("a tab"), "a tab");
    }

    #[test]
    fn the_writer_redacts_a_secret_split_over_two_writes() {
        let _s = Secret::new("split-secret-77");
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            std::io::Write::write_all(&mut w, b"echo: split-sec").unwrap();
            std::io::Write::write_all(&mut w, b"ret-77 end\n").unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "echo: *** end\n");
    }
}
