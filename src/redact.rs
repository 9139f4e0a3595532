//! Secrets never leave through messages: the one place where a URL (a
//! database, a webhook receiver, a recorder's source) is made fit for a log
//! line or an error.

use url::Url;

/// `url` with its password replaced by `***`. Text that is not a URL is
/// returned as it is: it carries no credentials in a form we can find.
pub fn url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have credentials at all,
            // which this one, having a password, can.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            url("http://u:p@hook.example/x"),
            "http://u:***@hook.example/x"
        );
        assert_eq!(url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(url("not a url"), "not a url");
    }
}
