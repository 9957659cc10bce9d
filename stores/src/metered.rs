//! Per-request metrics, once for every store: [`Metered`] wraps an `ObjectStore`
//! and reports every call to a [`Recorder`] (sent, first byte, end, bytes, success);
//! [`CountingConnector`] counts every HTTP exchange of an S3 client, retries
//! included.
//!
//! What is timed, and why there:
//!
//! - **Time to first byte** is when the call returns: for a GET, `get_opts`
//!   returns its `GetResult` once the response's status and headers have arrived
//!   (object_store reads the body afterwards, as a stream), so this is the first
//!   byte of the response — what a cloud's "first-byte latency" means, and the one
//!   instant every store and every kind of request has (a PUT's response, a local
//!   file opened). On HTTP/1 a small object's body usually arrives in the same
//!   segments as its headers, so the two differ by the body's transfer only.
//! - **Total time** ends when the body has been read to its end (or the stream is
//!   dropped): the request holds its connection until then. A `LocalFileSystem`
//!   GET returns an open file that the caller reads after the call, outside any
//!   wrapper, so its total is its first-byte time (the open and `stat`); its bytes
//!   are the range it returned.
//! - **In flight**: a request counts from the call until its end as above, so the
//!   gauge is the number of requests truly outstanding (sent and not yet read to
//!   the end), retries' back-off sleeps included.
//! - **Retries** happen inside object_store's client, below this wrapper; the
//!   [`CountingConnector`] sees each HTTP exchange (every attempt), and whether it
//!   failed in a way object_store retries (a transport error, 5xx, 429, 408). A
//!   request's attempts are not linked to it: retries are attempts less requests
//!   when each request is one exchange (every kind the backends make in a run).
//! - **On S3, `get_ranges`** is object_store's own coalescing (ranges closer than
//!   1 MiB merged, up to 10 requests at once) done through this wrapper, so each
//!   coalesced GET is timed as a `get_range`; on other stores it is passed on
//!   whole (a local file serves all its ranges in one blocking call) and timed as
//!   one `get_ranges`.
//! - Lists and deletes are one call each (a list is timed to its last page; a
//!   bulk delete to its last key): their pages are HTTP exchanges the connector
//!   counts.

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, RenameOptions, UploadPart,
};
use rechunk_contract::{Recorder, RequestDone, RequestKind, RequestOp, StoreClass};

/// An `ObjectStore` that reports every request it passes on to `recorder` (see the
/// module documentation for what is timed).
pub struct Metered {
    inner: Arc<dyn ObjectStore>,
    class: StoreClass,
    recorder: Arc<dyn Recorder>,
}

impl Metered {
    /// `inner`, a store of class `class`, reporting to `recorder`.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        class: StoreClass,
        recorder: Arc<dyn Recorder>,
    ) -> Self {
        Metered {
            inner,
            class,
            recorder,
        }
    }

    fn begin(&self, op: RequestOp) -> InFlight {
        InFlight::begin(self.class, op, &self.recorder)
    }
}

impl fmt::Debug for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({:?})", self.inner)
    }
}

impl fmt::Display for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

/// One request in flight: reported begun when made, ended exactly once (by
/// [`InFlight::end`], or as failed if dropped first: a caller that gives up on a
/// request ends it).
struct InFlight {
    kind: RequestKind,
    recorder: Arc<dyn Recorder>,
    started: Instant,
    first_byte: Option<Instant>,
    bytes: u64,
    ended: bool,
}

impl InFlight {
    fn begin(store: StoreClass, op: RequestOp, recorder: &Arc<dyn Recorder>) -> InFlight {
        let kind = RequestKind::new(store, op);
        recorder.request_begin(kind);
        InFlight {
            kind,
            recorder: recorder.clone(),
            started: Instant::now(),
            first_byte: None,
            bytes: 0,
            ended: false,
        }
    }

    fn first_byte(&mut self) {
        self.first_byte.get_or_insert_with(Instant::now);
    }

    fn end(&mut self, ok: bool) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let ended = Instant::now();
        let done = RequestDone {
            started: self.started,
            first_byte: self.first_byte.unwrap_or(ended),
            ended,
            bytes: self.bytes,
            ok,
        };
        self.recorder.request_end(self.kind, &done);
    }

    /// Ends the request with `r`'s outcome (and `bytes` moved if it succeeded).
    fn finish<T>(
        mut self,
        r: object_store::Result<T>,
        bytes: impl FnOnce(&T) -> u64,
    ) -> object_store::Result<T> {
        self.first_byte();
        if let Ok(v) = &r {
            self.bytes = bytes(v);
        }
        self.end(r.is_ok());
        r
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // A request dropped before its end was abandoned (its future or body
        // dropped): it failed as far as the caller is concerned.
        self.end(false);
    }
}

/// A GET's body: counts its bytes and ends the request when it ends.
struct MeteredBody {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    request: InFlight,
}

impl Stream for MeteredBody {
    type Item = object_store::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.request.bytes += chunk.len() as u64,
            Poll::Ready(Some(Err(_))) => self.request.end(false),
            Poll::Ready(None) => self.request.end(true),
            Poll::Pending => {}
        }
        polled
    }
}

#[async_trait]
impl ObjectStore for Metered {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let request = self.begin(RequestOp::Put);
        let len = payload.content_length() as u64;
        let r = self.inner.put_opts(location, payload, opts).await;
        request.finish(r, |_| len)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let request = self.begin(RequestOp::CreateMultipart);
        let r = self.inner.put_multipart_opts(location, opts).await;
        let upload = request.finish(r, |_| 0)?;
        Ok(Box::new(MeteredUpload {
            inner: upload,
            class: self.class,
            recorder: self.recorder.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head {
            RequestOp::Head
        } else if options.range.is_some() {
            RequestOp::GetRange
        } else {
            RequestOp::Get
        };
        let mut request = self.begin(op);
        let r = self.inner.get_opts(location, options).await;
        request.first_byte();
        match r {
            Err(e) => {
                request.end(false);
                Err(e)
            }
            Ok(mut got) => {
                match got.payload {
                    GetResultPayload::Stream(body) if op != RequestOp::Head => {
                        got.payload = GetResultPayload::Stream(
                            MeteredBody {
                                inner: body,
                                request,
                            }
                            .boxed(),
                        );
                    }
                    payload => {
                        // A local file (read by the caller after this call) or a
                        // HEAD: the request ends here.
                        if op != RequestOp::Head {
                            request.bytes = got.range.end.saturating_sub(got.range.start);
                        }
                        request.end(true);
                        got.payload = payload;
                    }
                }
                Ok(got)
            }
        }
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        if self.class == StoreClass::S3 {
            // object_store's own coalescing, each GET through `get_opts` above.
            return object_store::coalesce_ranges(
                ranges,
                |range| self.get_range(location, range),
                object_store::OBJECT_STORE_COALESCE_DEFAULT,
            )
            .await;
        }
        let request = self.begin(RequestOp::GetRanges);
        let r = self.inner.get_ranges(location, ranges).await;
        request.finish(r, |got| got.iter().map(|b| b.len() as u64).sum())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let request = self.begin(RequestOp::Delete);
        let inner = self.inner.delete_stream(locations);
        ended_with_stream(inner, request, |_| 0)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let request = self.begin(RequestOp::List);
        ended_with_stream(self.inner.list(prefix), request, |_| 0)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let request = self.begin(RequestOp::List);
        ended_with_stream(self.inner.list_with_offset(prefix, offset), request, |_| 0)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let request = self.begin(RequestOp::List);
        let r = self.inner.list_with_delimiter(prefix).await;
        request.finish(r, |_| 0)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let request = self.begin(RequestOp::Copy);
        let r = self.inner.copy_opts(from, to, options).await;
        request.finish(r, |_| 0)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        // A copy and a delete on S3; one rename on a local filesystem.
        let request = self.begin(RequestOp::Copy);
        let r = self.inner.rename_opts(from, to, options).await;
        request.finish(r, |_| 0)
    }
}

/// `inner`, ending `request` when it ends (an error item fails it); its first item
/// is its first byte. `bytes` counts each item's bytes.
fn ended_with_stream<T: Send + 'static>(
    inner: BoxStream<'static, object_store::Result<T>>,
    request: InFlight,
    bytes: fn(&T) -> u64,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::unfold(
        (inner, Some(request)),
        move |(mut inner, mut request)| async move {
            let item = inner.next().await;
            if let Some(r) = request.as_mut() {
                r.first_byte();
                match &item {
                    Some(Ok(v)) => r.bytes += bytes(v),
                    Some(Err(_)) => r.end(false),
                    None => r.end(true),
                }
            }
            item.map(|i| (i, (inner, request)))
        },
    )
    .boxed()
}

/// A multipart upload whose parts, completion and abort are requests of their own.
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
    class: StoreClass,
    recorder: Arc<dyn Recorder>,
}

impl fmt::Debug for MeteredUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({:?})", self.inner)
    }
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let part = self.inner.put_part(data);
        let (class, recorder) = (self.class, self.recorder.clone());
        // In flight from its first poll: a caller may make parts ahead and send a
        // few at a time (`stores::put_object` does).
        Box::pin(async move {
            let request = InFlight::begin(class, RequestOp::UploadPart, &recorder);
            request.finish(part.await, |_| len)
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let request = InFlight::begin(self.class, RequestOp::CompleteMultipart, &self.recorder);
        let r = self.inner.complete().await;
        request.finish(r, |_| 0)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let request = InFlight::begin(self.class, RequestOp::AbortMultipart, &self.recorder);
        let r = self.inner.abort().await;
        request.finish(r, |_| 0)
    }
}

/// object_store's reqwest client, with every HTTP exchange (each attempt, retries
/// included) reported to a recorder through [`Recorder::http_attempt`].
#[derive(Clone)]
pub struct CountingConnector {
    recorder: Arc<dyn Recorder>,
}

impl CountingConnector {
    /// Counts into `recorder`.
    pub fn new(recorder: Arc<dyn Recorder>) -> Self {
        CountingConnector { recorder }
    }
}

impl fmt::Debug for CountingConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingConnector")
    }
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService {
            client,
            recorder: self.recorder.clone(),
        }))
    }
}

struct CountingService {
    client: HttpClient,
    recorder: Arc<dyn Recorder>,
}

impl fmt::Debug for CountingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingService")
    }
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let r = self.client.execute(req).await;
        // What object_store's retry loop retries (client/retry.rs): transport
        // errors, server errors, 429 and 408.
        let failed = match &r {
            Err(_) => true,
            Ok(resp) => {
                let s = resp.status();
                s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408
            }
        };
        self.recorder.http_attempt(failed);
        r
    }
}
