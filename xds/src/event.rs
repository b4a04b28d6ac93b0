//! What a connection state machine hands back to the transport.

/// Something the client told us, for logs and stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The client applied the response with this nonce.
    Ack {
        type_url: String,
        version: String,
        nonce: String,
    },
    /// The client rejected the response with this nonce and keeps its previous config of
    /// that type. The same content is not sent again; a newer snapshot is.
    Nack {
        type_url: String,
        version: String,
        nonce: String,
        message: String,
    },
    /// The request answered a response that is no longer the latest of its type, so it says
    /// nothing about the latest one: its ACK/NACK part is ignored.
    Stale { type_url: String, nonce: String },
}

/// Responses to send, in order, and events to record.
#[derive(Debug)]
pub struct Output<R> {
    pub responses: Vec<R>,
    pub events: Vec<Event>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output {
            responses: Vec::new(),
            events: Vec::new(),
        }
    }
}
