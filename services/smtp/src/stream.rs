//! The connection: plain text or TLS over the same transport stream, one type so the
//! dialogue's driver is written once and STARTTLS can upgrade in place.

/// A plain or TLS stream (sixstack-tls's client stream).
pub type MailStream<S> = sixstack_tls::client_stream::ClientStream<S>;
