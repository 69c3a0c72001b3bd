//! HTTP request metrics with labels a client cannot invent: the method is one of the standard methods or
//! `_OTHER` (OpenTelemetry's HTTP semantic conventions), the route is the router's matched path template or
//! `unmatched`, the status is what the service answered. So the number of series is bounded by the router.
//!
//! Owns the label rules, the series table and the layer that fills it; rendering the series into
//! Prometheus text is `metrics`'.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::histogram::Histogram;

/// The method labels, in the order of [`method_index`]: the methods of RFC 9110 and PATCH, then `_OTHER`.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The route label of a request no route matched (404s).
pub const UNMATCHED: &str = "unmatched";

/// The index of `m`'s label in [`METHODS`]; any other token (hyper accepts every token as a method) is
/// `_OTHER`, so invented methods cannot add series.
pub fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// The series of one route: per method, the statuses seen with their latency histograms.
#[derive(Debug, Default)]
struct RouteSeries {
    by_method: [Vec<(u16, Arc<Histogram>)>; METHODS.len()],
}

/// HTTP request latencies by method, route and status.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    // Written once per new (route, method, status); every other request only takes the read lock.
    routes: RwLock<HashMap<String, RouteSeries>>,
}

impl HttpMetrics {
    fn find(&self, route: &str, method: usize, status: u16) -> Option<Arc<Histogram>> {
        let routes = self.routes.read().ok()?;
        let series = routes.get(route)?;
        series.by_method[method]
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, h)| h.clone())
    }

    /// Records one request.
    pub fn observe(&self, route: &str, method: usize, status: u16, elapsed: std::time::Duration) {
        let method = method.min(METHODS.len() - 1);
        if let Some(h) = self.find(route, method, status) {
            h.observe(elapsed);
            return;
        }
        let Ok(mut routes) = self.routes.write() else {
            return;
        };
        let slots = &mut routes.entry(route.to_owned()).or_default().by_method[method];
        let h = match slots.iter().find(|(s, _)| *s == status) {
            Some((_, h)) => h.clone(),
            None => {
                let h = Arc::new(Histogram::default());
                slots.push((status, h.clone()));
                h
            }
        };
        h.observe(elapsed);
    }

    /// Every series as `(method, route, status, histogram)`, sorted by route, method and status.
    pub fn series(&self) -> Vec<(&'static str, String, u16, Arc<Histogram>)> {
        let Ok(routes) = self.routes.read() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (route, series) in routes.iter() {
            for (i, slots) in series.by_method.iter().enumerate() {
                for (status, h) in slots {
                    out.push((METHODS[i], route.clone(), *status, h.clone()));
                }
            }
        }
        out.sort_by(|a, b| (&a.1, a.0, a.2).cmp(&(&b.1, b.0, b.2)));
        out
    }

    /// Appends the request counter and the latency histogram families' samples.
    pub fn render(&self, out: &mut String, family: impl Fn(&mut String, &str, &str, &str)) {
        let series = self.series();
        family(
            out,
            "http_server_requests_total",
            "counter",
            "HTTP requests served, by method (a standard method or _OTHER), route (the matched route or unmatched) and status.",
        );
        for (method, route, status, h) in &series {
            let _ = writeln!(
                out,
                "http_server_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                h.count()
            );
        }
        family(
            out,
            "http_server_request_duration_seconds",
            "histogram",
            "HTTP request latency, by method, route and status.",
        );
        for (method, route, status, h) in &series {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            h.render(out, "http_server_request_duration_seconds", &labels);
        }
    }
}

/// The layer that times every request and records it under its bounded labels. A plain tower layer rather
/// than `middleware::from_fn`, which boxes a service and two futures per request: `/live` is measured against
/// a bare handler.
#[derive(Debug, Clone)]
pub struct TrackLayer(pub Arc<HttpMetrics>);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            http: self.0.clone(),
        }
    }
}

/// The service of [`TrackLayer`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
    http: Arc<HttpMetrics>,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_index(req.method());
        // Cloning the matched path is a reference count; the raw URL never becomes a label.
        let route = req.extensions().get::<MatchedPath>().cloned();
        let http = self.http.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            http.observe(route, method, response.status().as_u16(), started.elapsed());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn invented_methods_share_the_other_label() {
        for token in ["PURGE", "M00001X", "get", "BREW"] {
            let m = Method::from_bytes(token.as_bytes()).expect("a token");
            assert_eq!(METHODS[method_index(&m)], "_OTHER", "{token}");
        }
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
    }

    #[test]
    fn one_series_per_route_method_and_status() {
        let m = HttpMetrics::default();
        for _ in 0..3 {
            m.observe("/live", 0, 200, Duration::from_millis(1));
        }
        m.observe("/live", 9, 405, Duration::from_millis(1));
        m.observe(UNMATCHED, 0, 404, Duration::from_millis(1));
        let s = m.series();
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].0, s[0].1.as_str(), s[0].2, s[0].3.count()),
            ("GET", "/live", 200, 3)
        );
        assert_eq!((s[1].0, s[1].2), ("_OTHER", 405));
        assert_eq!((s[2].1.as_str(), s[2].2), (UNMATCHED, 404));
    }
}
