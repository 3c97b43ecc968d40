//! What happened to a message: the server's answer for each recipient and for the message.

use crate::reply::Reply;

/// Where a recipient was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    /// `To:`.
    To,
    /// `Cc:`.
    Cc,
    /// Blind copy: in the envelope only.
    Bcc,
}

/// The server's answer to one `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// The address.
    pub address: String,
    /// Where it was named.
    pub kind: RecipientKind,
    /// The reply to `RCPT TO` (code and text).
    pub reply: Reply,
}

impl RecipientResult {
    /// Whether the server took the recipient (250 or 251).
    pub fn accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A message the server accepted, for at least one recipient.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Every envelope recipient with the server's answer, in the order sent.
    pub recipients: Vec<RecipientResult>,
    /// The server's answer at the end of the data (often with its queue id).
    pub reply: Reply,
    /// The message's `Message-ID`.
    pub message_id: String,
    /// Whether the message went over TLS.
    pub tls: bool,
    /// The AUTH mechanism used, if any.
    pub auth: Option<crate::auth::Mechanism>,
}

impl Delivery {
    /// The recipients the server refused.
    pub fn refused(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| !r.accepted())
    }

    /// The recipients the server took.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| r.accepted())
    }

    /// [`crate::exit::OK`], or [`crate::exit::SOME_REFUSED`] when a recipient was refused.
    pub fn exit_code(&self) -> i32 {
        if self.refused().next().is_some() {
            crate::exit::SOME_REFUSED
        } else {
            crate::exit::OK
        }
    }
}
