//! One HTTP/1.1 request at a time, for the AWS endpoints vault calls
//! without an SDK (the console federation endpoint, IAM Identity Center's
//! sign-in and portal): hyper with rustls and the system's roots, the same
//! stack the STS client uses, within a deadline and a size limit.
//! Proxies (`HTTPS_PROXY`) are not followed.

use std::time::Duration;
use zeroize::Zeroizing;

/// Answers larger than this are refused: every answer vault reads is a
/// small JSON object.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The whole request, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A request's method, URL, headers and body (whose bytes may be secret).
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<Zeroizing<Vec<u8>>>,
}

/// Sends `req` and returns the status and the body, or what went wrong.
pub fn send(req: Request<'_>) -> Result<(u16, Zeroizing<Vec<u8>>), String> {
    use http_body_util::{BodyExt, Full, Limited};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::{connect::Connect, Client};
    use hyper_util::rt::TokioExecutor;

    async fn go<C: Connect + Clone + Send + Sync + 'static>(
        connector: C,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), String> {
        let client: Client<C, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let resp = client.request(req).await.map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, Zeroizing::new(body.to_vec())))
    }

    let uri: hyper::Uri = req.url.parse().map_err(|_| "not a valid URL".to_string())?;
    let https = uri.scheme_str() == Some("https");
    let mut builder = hyper::Request::builder()
        .method(req.method)
        .uri(uri)
        .header(
            hyper::header::USER_AGENT,
            concat!("vault/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in req.headers {
        builder = builder.header(*k, *v);
    }
    // Bytes::from(Vec) takes the allocation as it is; the request drops it.
    let body = req
        .body
        .map(|mut b| Bytes::from(std::mem::take(&mut *b)))
        .unwrap_or_default();
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let call = async {
            if https {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
                    .map_err(|e| format!("no TLS root certificates: {e}"))?
                    .https_only()
                    .enable_http1()
                    .build();
                go(connector, request).await
            } else {
                go(
                    hyper_util::client::legacy::connect::HttpConnector::new(),
                    request,
                )
                .await
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    })
}

/// An error with its causes, `outer: inner: …`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
