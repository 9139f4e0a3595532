//! TLS for what recorderd sends out (webhooks to `https://` receivers, the
//! command-line client against an `https://` server): rustls with the ring
//! provider, which the database driver already builds.

/// Makes ring rustls's provider for this process. Any HTTP client must be
/// built after this (one built before would panic); calling it again does
/// nothing.
pub fn install_crypto_provider() {
    // An error means a provider is installed already: nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
