//! A response body written as the pieces a text is made of.

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Writes `pieces` one after the other, each a reference to text that lives anyway
/// (see [`crate::snapshot::Body`]): a plain scrape of a large exposition costs no copy
/// of it. Its exact size makes hyper send a `Content-Length`, as for one buffer.
#[derive(Debug)]
pub struct Pieces {
    pieces: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl Pieces {
    pub fn new(pieces: Vec<Bytes>) -> Self {
        let remaining = pieces.iter().map(|piece| piece.len() as u64).sum();
        Self {
            pieces: pieces.into_iter(),
            remaining,
        }
    }
}

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.pieces.find(|piece| !piece.is_empty());
        if let Some(piece) = &piece {
            self.remaining -= piece.len() as u64;
        }
        Poll::Ready(piece.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The pieces arrive whole and in order, empty ones skipped, and the size is
    /// known before the first.
    #[tokio::test]
    async fn writes_the_pieces_in_order_with_their_size() {
        let body = Pieces::new(vec![
            Bytes::from_static(b"# HELP a x\n"),
            Bytes::new(),
            Bytes::from_static(b"a 1\n"),
        ]);
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(15));
        let text = body.collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"# HELP a x\na 1\n");
        let empty = Pieces::new(Vec::new());
        assert!(hyper::body::Body::is_end_stream(&empty));
    }
}
