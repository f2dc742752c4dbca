//! [`SessionBody`]: the response body of [`SessionBinding`](super::SessionBinding). It passes
//! every frame through unchanged and, for a response on a bound session, watches the frames:
//! data restarts the binding's idle timer (at most every eighth of the idle timeout), and a body
//! that turns out to be the server's unknown-session answer forgets the binding.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::table::{SessionHash, Shared};

pin_project! {
    /// The response body of [`SessionBinding`](super::SessionBinding): the inner service's
    /// body, frame for frame. On a bound session's response it also keeps the binding alive
    /// while the server streams data (a tool's progress, a GET stream's notifications), the
    /// way the server's own session keep-alive counts its messages.
    pub struct SessionBody<B> {
        #[pin]
        inner: B,
        watch: Option<Box<Watch>>,
    }
}

/// What a bound session's response body is watched for.
pub(super) struct Watch {
    shared: Arc<Shared>,
    hash: SessionHash,
    /// Restart the idle timer on data (not on a 404).
    refresh: bool,
    /// When data may next restart the timer (monotonic nanoseconds).
    next_refresh: u64,
    /// The answer may be the server's unknown-session response: how many of its body bytes
    /// matched so far, `None` once it cannot be.
    matched: Option<usize>,
}

impl Watch {
    /// Restart the idle timer on data, from `now` (when the binding was just refreshed).
    pub(super) fn refreshing(shared: Arc<Shared>, hash: SessionHash, now: u64) -> Self {
        let next_refresh = now.saturating_add(shared.idle_nanos / 8);
        Watch {
            shared,
            hash,
            refresh: true,
            next_refresh,
            matched: None,
        }
    }

    /// Forget the binding if the body is the unknown-session response's.
    pub(super) fn unknown_session(shared: Arc<Shared>, hash: SessionHash) -> Self {
        Watch {
            shared,
            hash,
            refresh: false,
            next_refresh: u64::MAX,
            matched: Some(0),
        }
    }

    fn on_data(&mut self, data: &[u8]) {
        if self.refresh {
            let now = self.shared.clock.now_nanos();
            if now >= self.next_refresh {
                self.shared.refresh(&self.hash, now);
                self.next_refresh = now.saturating_add(self.shared.idle_nanos / 8);
            }
        }
        if let Some(seen) = self.matched {
            let expected = self.shared.unknown.body();
            self.matched = expected
                .get(seen..)
                .and_then(|rest| rest.get(..data.len()))
                .filter(|part| *part == data)
                .map(|_| seen + data.len());
        }
    }

    /// The body ended: forget the binding when it was the unknown-session answer.
    fn on_end(&mut self) {
        if self.matched.take() == Some(self.shared.unknown.body().len()) {
            self.shared.forget(&self.hash);
        }
    }
}

impl<B> SessionBody<B> {
    /// The inner body, unwatched.
    pub(super) fn plain(inner: B) -> Self {
        SessionBody { inner, watch: None }
    }

    /// The inner body, watched.
    pub(super) fn watched(inner: B, watch: Watch) -> Self {
        SessionBody {
            inner,
            watch: Some(Box::new(watch)),
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for SessionBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBody")
            .field("inner", &self.inner)
            .field("watched", &self.watch.is_some())
            .finish()
    }
}

impl<B> Body for SessionBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        if let Some(watch) = this.watch.as_deref_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        watch.on_data(data);
                    }
                }
                Poll::Ready(None) => watch.on_end(),
                Poll::Ready(Some(Err(_))) => watch.matched = None,
                Poll::Pending => {}
            }
        }
        // A server may not poll past a body that says it has ended.
        if let (Some(watch), Poll::Ready(Some(Ok(_)))) = (this.watch.as_deref_mut(), &polled)
            && watch.matched.is_some()
            && this.inner.is_end_stream()
        {
            watch.on_end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
